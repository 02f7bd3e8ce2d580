"""`tagmatrix run` end to end on the real engine and the lab registry."""

from __future__ import annotations

import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import docker
import pytest

from tests.conftest import validate_against_xsd
from tests.integration.conftest import (
    REGISTRY,
    Outcome,
    lab_matrix,
    make_project,
    run_matrix,
    run_project,
    tagmatrix,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

VERSION_TEST = """
    import sys

    def test_always():
        assert 1 + 1 == 2

    def test_not_on_newest():
        # fails on purpose on the newest lab interpreter
        newest = tuple(int(p) for p in "NEWEST".split("."))
        assert sys.version_info[:2] < newest, f"running on {sys.version_info[:2]}"
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
          lab_minors: list[str]) -> Iterator[tuple[Outcome, str, str]]:
    """One run: the oldest lab interpreter passes, the newest fails one test."""
    oldest, newest = lab_minors[0], lab_minors[-1]
    with Workspace(tmp_path_factory.mktemp("mixed"), docker_client, REGISTRY) as workspace:
        root = workspace.folder()
        path = make_project(root, lab_matrix([oldest, newest]),
                            {"test_version.py": VERSION_TEST.replace("NEWEST", newest)})
        outcome = tagmatrix("run", "-f", str(path), "--reports", str(root / "reports"),
                            client=docker_client)
        yield outcome, f"{oldest}-slim", f"{newest}-slim"


def test_exit_code_and_statuses(mixed: tuple[Outcome, str, str]) -> None:
    outcome, good, bad = mixed
    assert outcome.code == 1, outcome.err
    cells = outcome.cells()
    assert cells[good]["status"] == "passed"
    assert cells[good]["exit_code"] == 0
    assert cells[good]["tests"] == {"total": 2, "passed": 2, "failed": 0, "errors": 0,
                                    "skipped": 0}
    assert cells[good]["interpreter"]["version"].startswith(good.split("-")[0] + ".")
    assert cells[good]["interpreter"]["executable"] == "/usr/local/bin/python"
    assert cells[bad]["status"] == "failed"
    assert cells[bad]["exit_code"] == 1
    assert cells[bad]["tests"]["failed"] == 1
    assert outcome.leftovers == set(), "containers left behind"


def test_failing_test_is_in_junit_under_its_cell(mixed: tuple[Outcome, str, str]) -> None:
    outcome, good, bad = mixed
    root = ET.fromstring((outcome.reports / "junit.xml").read_bytes())  # noqa: S314 - ours
    case = root.find(f"testsuite[@name='{bad}']/testcase[@name='test_not_on_newest']")
    assert case is not None
    assert case.get("classname") == f"{bad}.tests.test_version"
    failure = case.find("failure")
    assert failure is not None
    assert "running on" in (failure.get("message") or "")
    ok = root.find(f"testsuite[@name='{good}']/testcase[@name='test_not_on_newest']")
    assert ok is not None
    assert ok.find("failure") is None
    assert (outcome.reports / "cells" / f"{bad}.xml").is_file()


def test_junit_validates_against_the_xsd(mixed: tuple[Outcome, str, str]) -> None:
    validate_against_xsd((mixed[0].reports / "junit.xml").read_bytes())


def test_logs_summary_and_terminal(mixed: tuple[Outcome, str, str]) -> None:
    outcome, _, bad = mixed
    log = (outcome.reports / "logs" / f"{bad}.log").read_text()
    assert "==> " in log
    assert "Step 1/" in log  # the build, streamed
    assert "1 failed, 1 passed" in log  # pytest's own output
    assert f"{bad}" in (outcome.reports / "summary.md").read_text()
    assert "Failing tests" in outcome.out
    assert "test_not_on_newest" in outcome.out
    assert (outcome.reports / "tagmatrix.log").read_text().count("finished") == 1


def test_tag_missing_from_registry_is_an_error_and_others_still_run(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    # 3.14 is published upstream (the catalogue plans it) but the lab has no 3.14 image
    assert "3.14" not in lab_minors
    outcome = run_matrix(workspace.folder(), lab_matrix([lab_minors[0], "3.14"]),
                         {"test_ok.py": "def test_ok():\n    pass\n"}, client=docker_client,
                         expect=1)
    cells = outcome.cells()
    assert cells[f"{lab_minors[0]}-slim"]["status"] == "passed"
    missing = cells["3.14-slim"]
    assert missing["status"] == "error"
    assert missing["stage"] == "pull"
    assert "not found" in missing["reason"]
    root = ET.fromstring((outcome.reports / "junit.xml").read_bytes())  # noqa: S314 - ours
    error = root.find("testsuite[@name='3.14-slim']/testcase[@name='build']/error")
    assert error is not None
    assert "not found" in (error.get("message") or "")


def _parse_time(text: str) -> datetime:
    # the engine's RFC 3339 with nanoseconds: keep microseconds
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def test_two_cells_really_overlap_with_parallel_2(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"}
    root = workspace.folder()

    def intervals(parallel: int, name: str) -> list[tuple[datetime, datetime]]:
        path = make_project(root, lab_matrix(lab_minors[:2], parallel=parallel), tests)
        outcome = run_project(path, client=docker_client, reports=root / name)
        return [(_parse_time(c["started_at"]), _parse_time(c["finished_at"]))
                for c in outcome.cells().values()]

    # Warm the build cache first: cold builds of different lengths could keep
    # two containers apart in time whatever the scheduler does.
    intervals(2, "warm-up")
    # The engine's own start/finish times of the two containers:
    (a_start, a_end), (b_start, b_end) = intervals(2, "parallel-2")
    assert max(a_start, b_start) < min(a_end, b_end), "the containers did not overlap"
    # ...and the same measurement shows no overlap with parallel 1.
    (a_start, a_end), (b_start, b_end) = intervals(1, "parallel-1")
    assert max(a_start, b_start) >= min(a_end, b_end)


def test_base_image_is_pulled_from_the_registry_with_its_digest(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    minor = lab_minors[0]
    reference = f"{REGISTRY}/library/python:{minor}-slim"
    # pull: always forces a real pull. (Untagging the base image to force one would
    # pull the rug from under other runs on the shared engine, and fails while a
    # mount-mode container of theirs uses it.)
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/library/python/manifests/{minor}-slim", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local lab
        digest = response.headers["Docker-Content-Digest"]
    matrix = lab_matrix([minor]).replace(f'{{registry: "{REGISTRY}"}}',
                                         f'{{registry: "{REGISTRY}", pull: always}}')
    outcome = run_matrix(workspace.folder(), matrix, {"test_ok.py": "def test_ok():\n  pass\n"},
                         client=docker_client)
    assert outcome.cells()[f"{minor}-slim"]["image_digest"] == digest
    log = (outcome.reports / "logs" / f"{minor}-slim.log").read_text()
    assert f"pulling {reference}" in log


def test_config_error_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text("matrix:\n  python: [3.10]\n")
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    assert outcome.code == 2
    assert f"{path}:2:" in outcome.err
    assert "Traceback" not in outcome.err


def test_only_runs_the_selected_cells(workspace: Workspace, docker_client: docker.DockerClient,
                                      lab_minors: list[str]) -> None:
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:2]),
                         {"test_ok.py": "def test_ok():\n    pass\n"}, client=docker_client,
                         args=("--only", f"python={lab_minors[1]}"))
    assert list(outcome.cells()) == [f"{lab_minors[1]}-slim"]
