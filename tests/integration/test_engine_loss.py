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
    managed_containers,
    tagmatrix,
    wait_running,
)

pytestmark = [pytest.mark.docker, pytest.mark.disruptive]


def _dockerd() -> int | None:
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    return int(found.stdout.split()[0]) if found.returncode == 0 else None


def test_engine_lost_mid_run(tmp_path: Path, docker_client: docker.DockerClient,
                             lab_minors: list[str],
        spawn: Spawn) -> None:
    pid = _dockerd()
    if pid is None:
        pytest.fail("no dockerd process to stop on this machine", pytrace=False)
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(30)\n"}
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], parallel=1).replace(
        "variant: [slim]", "variant: [slim]\n  shard: [a, b, c]"), tests)
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    try:
        wait_running(docker_client, 1)
        time.sleep(1)
        os.kill(pid, signal.SIGTERM)  # the engine goes away
        _, err = process.communicate(timeout=120)
    finally:
        restarted = subprocess.run([str(REPO / "lab" / "up")], capture_output=True, text=True,
                                   timeout=300, check=False)
    assert restarted.returncode == 0, restarted.stderr
    assert process.returncode == 3, err
    assert "lost the Docker engine" in err
    assert "Traceback" not in err
    cells = Outcome(3, "", err, tmp_path / "r").cells()
    assert [c["status"] for c in cells.values()] == ["error", "error", "error"]
    assert [c["stage"] for c in cells.values()] == ["engine", "engine", "engine"]
    assert all("lost the Docker engine" in c["reason"] for c in cells.values())
    first, second, third = (c["reason"] for c in cells.values())
    assert not first.startswith("not run: ")  # it was running
    # the second may have been started ahead of its turn (and failed there), the
    # third never got a thread: it is certainly "not run"
    assert third.startswith("not run: ")
    assert second.startswith(("not run: ", "lost the Docker engine"))
    assert len(list(junitparser.JUnitXml.fromfile(str(tmp_path / "r" / "junit.xml")))) == 3
    # back up: what the lost run left is cleaned (its process is gone)
    client = docker.from_env()
    try:
        cleaned = tagmatrix("clean")
        assert cleaned.code == 0, cleaned.err
        assert managed_containers(client) == set()
    finally:
        client.close()
