"""Gating workflows end to end: baselines, unexpected passes, locks, reruns, CI output."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.engine.registry import Registry
from tests.integration.conftest import (
    REGISTRY,
    lab_matrix,
    make_project,
    run_matrix,
    run_project,
    tagmatrix,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

EXPECT_TESTS = {"test_expect.py": """
    from pathlib import Path

    STATE = Path(__file__).with_name("state.txt").read_text().split()

    def test_a():
        assert "a-ok" in STATE

    def test_b():
        assert "b-ok" in STATE
"""}


def _state(root: Path, text: str) -> None:
    (root / "tests" / "state.txt").write_text(text)


def test_baseline_finds_exactly_the_changed_tests(tmp_path: Path, workspace: Workspace,
                                                  docker_client: docker.DockerClient,
                                                  lab_minors: list[str]) -> None:
    root = workspace.folder("p")
    path = make_project(root, lab_matrix(lab_minors[:2]), EXPECT_TESTS)
    _state(root, "a-ok b-bad")
    first = run_project(path, client=docker_client, reports=tmp_path / "r1", expect=1)
    _state(root, "a-bad b-ok")  # test_a breaks, test_b is fixed
    second = run_project(path, client=docker_client, reports=tmp_path / "r2", args=(
        "--baseline", str(tmp_path / "r1" / "results.json"), "--fail-on", "regressions"),
        expect=1)  # something newly fails
    for cell in second.cells().values():
        assert cell["comparison"]["tests"] == {"new failure": ["tests.test_expect::test_a"],
                                               "fixed": ["tests.test_expect::test_b"]}
        assert cell["comparison"]["cell"] == "still failing"
        assert cell["comparison"]["attribution"].startswith(
            "project changed, base image unchanged")
    assert second.results()["baseline"] == first.results()["run_id"]
    assert "new failure: " in second.out
    assert "tests.test_expect::test_a: new failure" in second.out
    assert second.out.index("Compared with baseline") < second.out.index("python")
    summary = (tmp_path / "r2" / "summary.md").read_text()
    assert summary.index("### Compared with baseline") < summary.index("| python |")
    # nothing changed since: still failing, nothing new -> the nightly gate passes
    third = run_project(path, client=docker_client, reports=tmp_path / "r3", args=(
        "--baseline", str(tmp_path / "r2" / "results.json"), "--fail-on", "regressions"))
    assert {c["status"] for c in third.cells().values()} == {"failed"}
    for cell in third.cells().values():
        assert cell["comparison"]["tests"] == {"still failing": ["tests.test_expect::test_a"]}


def test_an_allowed_to_fail_cell_that_passes_is_called_out(workspace: Workspace,
                                                          docker_client: docker.DockerClient,
                                                          lab_minors: list[str]) -> None:
    newest = lab_minors[-1]
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[-2:], extra=f"""
        allow_failure: ["python={newest}"]
    """), {"test_ok.py": "def test_ok():\n    pass\n"}, client=docker_client)
    text = f"{newest}-slim now passes although it is allowed to fail: consider making it " \
           "required"
    assert text in outcome.out
    assert text in (outcome.reports / "summary.md").read_text()
    assert text in (outcome.reports / "index.html").read_text()


def _push(client: docker.DockerClient, source: str, repository: str, tag: str) -> str:
    image = client.images.pull(f"{REGISTRY}/library/python", source)
    image.tag(f"{REGISTRY}/{repository}", tag)
    for line in client.api.push(f"{REGISTRY}/{repository}", tag, stream=True, decode=True):
        assert "error" not in line, line
    digest = Registry(REGISTRY).digest(repository, tag)
    assert digest is not None
    return digest


def test_locked_run_keeps_its_digest_after_the_tag_moves(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str]) -> None:
    old, new = lab_minors[0], lab_minors[-1]
    repository = workspace.repository("locktest/python")
    first = _push(docker_client, f"{old}-slim", repository, "3-slim")
    path = make_project(workspace.folder(), lab_matrix(["3"]).replace(
        '{registry: "127.0.0.1:5000"}', f'{{registry: "{REGISTRY}", repository: {repository}}}'),
        {"test_ok.py": "def test_ok():\n    pass\n"})
    locked = tagmatrix("lock", "-f", str(path))
    assert locked.code == 0, locked.err
    lock = json.loads(path.with_suffix(".lock").read_text())
    assert lock["images"] == {"3-slim": {"digest": first}}
    moved = _push(docker_client, f"{new}-slim", repository, "3-slim")  # the tag moves
    assert moved != first
    pinned = run_project(path, client=docker_client, args=("--locked",),
                         reports=tmp_path / "a")
    cell = pinned.cells()["3-slim"]
    assert cell["image_digest"] == first
    assert cell["interpreter"]["version"].startswith(f"{old}.")
    assert cell["image"].endswith(f"@{first}")
    floating = run_project(path, client=docker_client, reports=tmp_path / "b")
    assert floating.cells()["3-slim"]["interpreter"]["version"].startswith(f"{new}.")
    # the locked image disappears from the registry: the locked run refuses to start
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/manifests/{first}",
                                     method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local lab
        assert response.status == 202
    gone = run_project(path, client=docker_client, args=("--locked",), reports=tmp_path / "c",
                       expect=2)
    assert "locked images are gone" in gone.err
    assert first in gone.err


def test_rerun_failed_runs_exactly_the_failed_cells(workspace: Workspace,
                                                    docker_client: docker.DockerClient,
                                                    lab_minors: list[str]) -> None:
    newest = lab_minors[-1]
    tests = {"test_v.py": f"""
        import sys

        def test_not_newest():
            assert sys.version_info[:2] != tuple(int(p) for p in "{newest}".split("."))
    """}
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors), tests)

    def ran_again(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
        # a rerun merges into the folder's results: the other cells stay as they were
        assert list(after) == list(before)
        return [i for i in after if after[i]["started_at"] != before[i]["started_at"]]

    first = run_project(path, client=docker_client, expect=1).cells()
    rerun = run_project(path, client=docker_client, args=("--rerun-failed",), expect=1).cells()
    assert ran_again(first, rerun) == [f"{newest}-slim"]
    # changed code is never merged with cells that tested the old code (test_boundary):
    # after the fix the whole matrix runs, and then there is nothing left to rerun
    (root / "tests" / "test_v.py").write_text("def test_ok():\n    pass\n")
    fixed = run_project(path, client=docker_client).cells()
    assert {c["status"] for c in fixed.values()} == {"passed"}
    nothing = run_project(path, client=docker_client, args=("--rerun-failed",))
    assert "nothing to rerun" in nothing.out


def test_output_without_a_terminal_has_no_escape_codes(workspace: Workspace,
                                                       docker_client: docker.DockerClient,
                                                       lab_minors: list[str]) -> None:
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:2]),
                         {"test_c.py": "def test_c():\n    print('\\x1b[31mred\\x1b[0m')\n"
                                       "    assert False, '\\x1b[1mbold'\n"},
                         client=docker_client, expect=1)
    assert "\x1b" not in outcome.out
    assert "\x1b" not in outcome.err
    assert "#x1B[1mbold" in outcome.out  # the test's own escapes, made visible


def test_github_actions_groups_annotations_and_step_summary(tmp_path: Path,
                                                            workspace: Workspace,
                                                            docker_client: docker.DockerClient,
                                                            lab_minors: list[str]) -> None:
    newest = lab_minors[-1]
    tests = {"test_v.py": f"""
        import sys

        def test_not_newest():
            print("::set-env name=HACKED::1")
            assert sys.version_info[:2] != tuple(int(p) for p in "{newest}".split("."))
    """}
    step = tmp_path / "step-summary.md"
    outcome = run_matrix(workspace.folder(), lab_matrix(
        lab_minors[-2:], command="python -m pytest -s tests"), tests, client=docker_client,
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step)}, expect=1)
    lines = outcome.out.splitlines()
    assert f"::group::tagmatrix {newest}-slim: failed (exit code 1; 1 failed, 0 errors)" in lines
    assert any(line.startswith(f"::error title=tagmatrix {newest}-slim failed::") for line in
               lines)
    # printed (after pytest's file name), but between stop-commands markers
    hacked = next(i for i, line in enumerate(lines) if "::set-env name=HACKED::1" in line)
    token = next(line for line in reversed(lines[:hacked]) if line.startswith("::stop-commands"))
    assert f"::{token.split('::')[2]}::" in lines[hacked:]
    assert step.read_text().startswith("## tagmatrix")


def test_live_progress_on_a_terminal(workspace: Workspace, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1]),
                        {"test_ok.py": "def test_ok():\n    pass\n"})
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-f", str(path),
                                "--reports", str(root / "r")], stdin=slave, stdout=slave,
                               stderr=slave, env={**os.environ, "COLUMNS": "120",
                                                  "LINES": "30", "TERM": "xterm"})
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:  # until EOF, the exit, or the deadline
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait(timeout=120)
        os.close(master)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    assert "\x1b[" in text  # drawn live
    assert "attempt" in text  # the live table's header
    assert f"{lab_minors[0]}-slim" in text
