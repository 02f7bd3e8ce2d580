"""The run history on the real engine: a flaky test told apart and kept from gating, a
slowdown on one interpreter, a deprecation first seen on 3.12, two runs at once.

Projects live in folders named ``nightly-*`` so the images tagmatrix builds for them are
``tagmatrix/nightly-*``; the module removes exactly those at the end.
"""

from __future__ import annotations

import http.server
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.reports.summary import _md

from .conftest import (
    REGISTRY,
    Outcome,
    Owner,
    Spawn,
    lab_matrix,
    make_project,
    managed_containers,
    tagmatrix,
)
from .workspace import Workspace

FLIPPER = {"test_flip.py": """
    import os
    import urllib.request

    def test_flips():
        # the counter lives outside the container: odd calls pass, even calls fail
        count = int(urllib.request.urlopen(os.environ["FLIP_URL"], timeout=10).read())
        assert count % 2 == 1, f"call {count}"

    def test_steady():
        pass
"""}


class Counter(http.server.ThreadingHTTPServer):
    """Counts GET requests in a file on the host; serves the new count."""

    def __init__(self, address: tuple[str, int], path: Path) -> None:
        self.path = path
        path.write_text("0")
        super().__init__(address, _CountHandler)


class _CountHandler(http.server.BaseHTTPRequestHandler):
    server: Counter

    def do_GET(self) -> None:
        count = int(self.server.path.read_text()) + 1
        self.server.path.write_text(str(count))
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module", autouse=True)
def _own_images(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    for image in docker_client.images.list(name="tagmatrix/nightly-*"):
        for tag in image.tags:
            docker_client.images.remove(tag, force=True)


@pytest.fixture
def counter(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[str]:
    """A URL the containers reach (the bridge's gateway), backed by a counter file."""
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    server = Counter((gateway, 0), tmp_path / "counter")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{gateway}:{server.server_address[1]}/flip"
    server.shutdown()
    server.server_close()
    thread.join()


def _results(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "results.json").read_text())
    return data


def test_a_flipping_test_is_reported_flaky_and_stops_gating(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str], counter: str) -> None:
    path = make_project(workspace.folder("nightly-flaky"), lab_matrix(
        lab_minors[-1:], test_extra=f"env: {{FLIP_URL: {json.dumps(counter)}}}"), FLIPPER)
    codes, summaries = [], []
    for night in range(1, 5):
        reports = tmp_path / f"r{night}"
        outcome = tagmatrix("run", "-f", str(path), "--reports", str(reports), "--baseline",
                            "auto", "--fail-on", "regressions", client=docker_client)
        assert "Traceback" not in outcome.err
        assert outcome.leftovers == set()
        codes.append(outcome.code)
        summaries.append((reports / "summary.md").read_text())
    # pass, fail (a new failure: nothing known yet), pass, fail (known flaky: no gate)
    assert codes == [0, 1, 0, 0], summaries
    test = "tests.test_flip::test_flips"
    assert _md(f"{lab_minors[-1]}-slim: {test}: not gating: flaky in 2 of the last 3 runs") \
        in summaries[3]
    assert "**OK: no new failures that gate (1 new failure(s) not gating: known flaky or " \
           "quarantined; 1 still failing, gate passed: regressions)" in summaries[3]
    last = _results(tmp_path / "r4")
    [flaky] = [f for f in last["flaky"] if f["test"] == test]
    assert (flaky["flips"], flaky["runs"], flaky["cells"]) == (3, 4, [f"{lab_minors[-1]}-slim"])
    assert flaky["rate"] == 1.0  # every comparison (nothing changed) flipped
    assert [e["kind"] for e in last["not_gating"]] == ["flaky"]
    assert last["history"]["recorded"] is True
    assert [p["status"] for p in last["history"]["strips"][f"{lab_minors[-1]}-slim"]] == \
        ["passed", "failed", "passed", "failed"]
    assert (tmp_path / "counter").read_text() == "4"


SLOW_AND_DEPRECATED = {"test_speed.py": """
    import datetime
    import os
    import time

    SLOW = os.environ["SLOW_PYTHON"]

    def test_sleeps():
        time.sleep(1.6 if os.environ["MATRIX_PYTHON"] == SLOW else 0.2)

    def test_utcnow():
        # deprecated from Python 3.12 on: a DeprecationWarning there, nothing before
        assert datetime.datetime.utcnow().year > 2000
"""}


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
             lab_minors: list[str]) -> Iterator[tuple[Outcome, list[str]]]:
    pythons = [m for m in lab_minors if m in ("3.11", "3.12", "3.13")]
    if pythons != ["3.11", "3.12", "3.13"]:
        pytest.fail(f"the lab serves {lab_minors}; these tests need 3.11, 3.12 and 3.13",
                    pytrace=False)
    with Workspace(tmp_path_factory.mktemp("h"), docker_client, REGISTRY) as workspace:
        root = workspace.folder("nightly-slow")
        path = make_project(root, lab_matrix(pythons, parallel=3,
                                             test_extra='env: {SLOW_PYTHON: "3.12"}'),
                            SLOW_AND_DEPRECATED)
        outcome = tagmatrix("run", "-f", str(path), "--reports", str(root / "r"), "--fail-on",
                            "slowdowns", client=docker_client)
        yield outcome, pythons


def test_a_test_slower_on_one_interpreter_is_a_slowdown_there_only(
        slow_run: tuple[Outcome, list[str]]) -> None:
    outcome, _ = slow_run
    assert outcome.code == 1, outcome.err  # every cell passed; the slowdown gate failed
    data = outcome.results()
    assert [c["status"] for c in data["cells"]] == ["passed"] * 3
    # only test_sleeps is slow on purpose (a loaded machine may add another: not asserted)
    [slow] = [s for s in data["slowdowns"] if s["test"] == "tests.test_speed::test_sleeps"]
    assert (slow["cell"], slow["against"]) == ("3.12-slim", "cell")
    # the median cell of the run: one of the two fast ones, whichever was slower tonight
    assert slow["baseline_cell"] in ("3.11-slim", "3.13-slim")
    assert slow["ratio"] >= 4
    summary = (outcome.reports / "summary.md").read_text()
    assert _md("tests.test_speed::test_sleeps: 3.12-slim takes ") in summary
    assert "--fail-on slowdowns: failed (1)" in summary


def test_a_deprecation_from_312_on_is_first_seen_on_312(
        slow_run: tuple[Outcome, list[str]]) -> None:
    outcome, _ = slow_run
    data = outcome.results()
    [entry] = [e for e in data["warnings_ledger"] if "utcnow" in e["message"]]
    assert (entry["category"], entry["first_seen"], entry["pythons"], entry["location"]) == \
        ("DeprecationWarning", "3.12", ["3.12", "3.13"], "tests/test_speed.py:12")
    assert entry["tests"] == ["tests.test_speed::test_utcnow"]  # as the JUnit names it
    cells = outcome.cells()
    assert cells["3.11-slim"]["warnings"] == []  # collected, and nothing on 3.11
    assert [w["message"][:40] for w in cells["3.12-slim"]["warnings"]] == \
        ["datetime.datetime.utcnow() is deprecated"]
    summary = (outcome.reports / "summary.md").read_text()
    assert _md("first seen on 3.12: DeprecationWarning: datetime.datetime.utcnow() is "
               "deprecated") in summary


def _running(client: docker.DockerClient, owner: Owner) -> bool:
    return bool(managed_containers(client, owner, running=True))


def test_two_concurrent_runs_both_land_in_the_history(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str], spawn: Spawn) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"}
    path = make_project(workspace.folder("nightly-concurrent"), lab_matrix(lab_minors[:1]), tests)
    history = tmp_path / "shared" / "history.db"
    processes = [spawn("run", "-f", str(path), "--reports", str(tmp_path / name),
                       "--history", str(history)) for name in ("a", "b")]
    owners = [owner for _, owner in spawn.started]
    deadline = time.monotonic() + 240
    while not all(_running(docker_client, o) for o in owners):  # both at once
        assert all(p.poll() is None for p in processes), "a run ended before the other began"
        assert time.monotonic() < deadline, "the two runs never ran at the same time"
        time.sleep(0.2)
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    shown = tagmatrix("history", "--history", str(history), "--json")
    assert shown.code == 0, shown.err
    recorded = {r["run_id"] for r in json.loads(shown.out)["runs"]}
    assert recorded == {_results(tmp_path / name)["run_id"] for name in ("a", "b")}


NIGHTS = {"test_app.py": """
    import datetime
    import os


    def test_stamp():
        # deprecated from Python 3.12 on: one warning per run, at this line
        assert datetime.datetime.utcnow().year > 2000


    def test_parse():
        assert int("7") == 7
"""}
BROKEN_PARSE = NIGHTS["test_app.py"].replace('int("7") == 7', 'int("7") == 8')
MOVED_STAMP = NIGHTS["test_app.py"].replace("    # deprecated", "    # (a line added)\n"
                                            "    # deprecated")
QUARANTINED_NET = MOVED_STAMP + """

    def test_net_timeout():
        assert False, "the service timed out"
"""


def test_a_branch_a_moved_warning_and_a_quarantine_on_the_real_engine(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str]) -> None:
    """main passes; a feature branch breaks test_parse; main again (a line added above
    utcnow()): not "fixed" (it never failed on main), its warning not new; then main with
    a quarantined failing test: a skip in the JUnit, no ::error, exit 0."""
    python = lab_minors[-1]  # 3.12 or later: utcnow() warns
    cell_id = f"{python}-slim"
    root = workspace.folder("nfix-nights")
    until = "2099-12-31"
    path = make_project(root, lab_matrix([python], extra=(
        f'quarantine:\n  - {{test: "tests.test_app::test_net_*", until: {until}}}\n')), NIGHTS)
    tests = root / "tests" / "test_app.py"

    def night(name: str, branch: str, body: str, *args: str) -> Outcome:
        tests.write_text(textwrap.dedent(body).lstrip())
        return tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / name), *args,
                         client=docker_client,
                         env={"GITHUB_HEAD_REF": branch, "GITHUB_ACTIONS": "true"})

    first = night("r1", "main", NIGHTS["test_app.py"])
    feature = night("r2", "feature", BROKEN_PARSE)
    assert (first.code, feature.code) == (0, 1), feature.err
    assert [v["verdict"] for v in feature.results()["verdicts"]] == \
        ["failing, no earlier result"]  # main's run is not the feature branch's history
    again = night("r3", "main", MOVED_STAMP, "--baseline", "auto",
                  "--fail-on", "regressions,new-warnings")
    assert again.code == 0, again.out + again.err
    data = again.results()
    assert data["verdicts"] == []  # not "fixed": it never failed on main
    assert data["baseline"] == first.results()["run_id"]
    note = data["history"]
    assert (note["scope"], note["compared"], note["left_out"]) == \
        ("branch main, no profile", 1, 1)
    assert [p["run_id"] for p in note["strips"][cell_id]] == \
        [first.results()["run_id"], data["run_id"]]
    [entry] = [e for e in data["warnings_ledger"] if "utcnow" in e["message"]]
    assert entry["location"] == "tests/test_app.py:8"  # was :7 on the first night
    assert entry["tests"] == ["tests.test_app::test_stamp"]
    assert data["new_warnings"] == []
    assert "compared with the 1 earlier run(s) of branch main, no profile" in again.out

    held = night("r4", "main", QUARANTINED_NET)
    assert held.code == 0, held.out + held.err
    assert [c["quarantined"] for c in held.results()["cells"]] == \
        [["tests.test_app::test_net_timeout"]]
    for junit in (held.reports / "junit.xml", held.reports / "cells" / f"{cell_id}.xml"):
        text = junit.read_text()
        assert '<skipped type="tagmatrix.quarantined.failed" message="quarantined, does ' \
               'not gate: AssertionError: the service timed out' in text
        assert "[tagmatrix] failed, but quarantined: it does not gate" in text
        assert "<failure" not in text
    assert not [line for line in held.out.splitlines() if line.startswith("::error")]
    assert f"::warning title=not gating in {cell_id}::tests.test_app::test_net_timeout: " \
           f"quarantined until {until}" in held.out
    # no terminal: the strip is letters, with their legend (main's three runs)
    assert "Recent runs, oldest first (P passed F failed E error T timeout s skipped " \
           "c cancelled - absent)" in held.out
    assert f"  {cell_id}  PPF" in held.out
    assert "not gating: 1 cell(s) failing only through quarantined tests" in held.out
