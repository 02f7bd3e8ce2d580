"""The engine stops mid-run: remaining cells end as error, reports are written, exit 3.

Disruptive (it stops the real dockerd, then starts it again with lab/up): the
collection hook in tests/conftest.py runs it after every other test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import junitparser
import pytest

from tests.conftest import REPO
from tests.integration.conftest import (
    Outcome,
    Spawn,
    lab_matrix,
    make_project,
    tagmatrix,
    wait_running,
)
from tests.integration.workspace import Workspace

pytestmark = [pytest.mark.docker, pytest.mark.disruptive]


def _dockerd() -> int | None:
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    return int(found.stdout.split()[0]) if found.returncode == 0 else None


def _wait_for_text(path: Path, text: str, process: subprocess.Popen[str],
                   timeout: float = 60) -> None:
    """Until ``path`` holds ``text``; fails when the process ends first or at the deadline."""
    deadline = time.monotonic() + timeout
    while not (path.is_file() and text in path.read_text(errors="replace")):
        assert process.poll() is None, f"tagmatrix ended before {path} said {text!r}"
        assert time.monotonic() < deadline, f"{path} did not say {text!r} in {timeout} s"
        time.sleep(0.1)


def test_engine_lost_mid_run(workspace: Workspace, docker_client: docker.DockerClient,
                             lab_minors: list[str], spawn: Spawn) -> None:
    pid = _dockerd()
    if pid is None:
        pytest.fail("no dockerd process to stop on this machine", pytrace=False)
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    print('slow test started', "
                             "flush=True)\n    time.sleep(30)\n"}
    root = workspace.folder()
    # -s: the test's print reaches the cell's log while it runs
    path = make_project(root, lab_matrix(lab_minors[:1], parallel=1,
                                         command="python -m pytest -q -s tests").replace(
        "variant: [slim]", "variant: [slim]\n  shard: [a, b, c]"), tests)
    process = spawn("run", "-f", str(path), "--reports", str(root / "r"))
    try:
        wait_running(docker_client, 1, process)
        # the first cell's tests run: tagmatrix is waiting on its container
        _wait_for_text(root / "r" / "logs" / f"{lab_minors[0]}-slim-a.log",
                       "slow test started", process)
        os.kill(pid, signal.SIGTERM)  # the engine goes away
        _, err = process.communicate(timeout=120)
    finally:
        restarted = subprocess.run([str(REPO / "lab" / "up")], capture_output=True, text=True,
                                   timeout=300, check=False)
    assert restarted.returncode == 0, restarted.stderr
    assert process.returncode == 3, err
    assert "lost the Docker engine" in err
    assert "Traceback" not in err
    cells = Outcome(3, "", err, root / "r").cells()
    assert [c["status"] for c in cells.values()] == ["error", "error", "error"]
    assert [c["stage"] for c in cells.values()] == ["engine", "engine", "engine"]
    assert all("lost the Docker engine" in c["reason"] for c in cells.values())
    first, second, third = (c["reason"] for c in cells.values())
    assert not first.startswith("not run: ")  # it was running
    # the second may have been started ahead of its turn (and failed there), the
    # third never got a thread: it is certainly "not run"
    assert third.startswith("not run: ")
    assert second.startswith(("not run: ", "lost the Docker engine"))
    assert len(list(junitparser.JUnitXml.fromfile(str(root / "r" / "junit.xml")))) == 3
    # back up: what the lost run left is cleaned (its process is gone)
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0, cleaned.err
    assert spawn.containers() == set()
