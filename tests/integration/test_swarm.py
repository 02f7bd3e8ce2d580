"""The Swarm engine on the lab's single-node Swarm, with the lab registry."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO
from tests.integration.conftest import (
    MANAGED,
    REGISTRY,
    Spawn,
    lab_matrix,
    make_project,
    tagmatrix,
)
from tests.integration.swarmlab import containers_everywhere, running_tasks, until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

ENGINES = f"""
engines:
  local: {{type: docker}}
  cluster: {{type: swarm, registry: "{REGISTRY}"}}
"""
SLEEPER = {"test_sleep.py": "import time\n\ndef test_sleep():\n    time.sleep(100000)\n"}


def services(client: docker.DockerClient) -> list[str]:
    return [s.name for s in client.services.list(filters={"label": MANAGED})]


@pytest.fixture(scope="module")
def swarm_ready(docker_client: docker.DockerClient) -> None:
    swarm = docker_client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        pytest.fail("the lab's Swarm is not active (make lab)", pytrace=False)


@pytest.mark.usefixtures("swarm_ready")
def test_the_example_gives_the_same_results_on_swarm_and_local(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    project = tmp_path / "sample"
    shutil.copytree(REPO / "examples" / "sample", project,
                    ignore=shutil.ignore_patterns("reports", "__pycache__"))
    matrix = project / "matrix.yaml"
    matrix.write_text(matrix.read_text() + ENGINES)
    outcomes = {engine: tagmatrix("run", "-f", str(matrix), "--engine", engine, "--reports",
                                  str(tmp_path / engine), client=docker_client)
                for engine in ("local", "cluster")}
    local, swarm = outcomes["local"], outcomes["cluster"]
    assert local.code == swarm.code == 1, swarm.err  # 3.13 fails by design

    def shape(cells: dict[str, dict[str, object]]) -> dict[str, tuple[object, object]]:
        return {cell_id: (c["status"], c["tests"]) for cell_id, c in cells.items()}

    assert shape(swarm.cells()) == shape(local.cells())
    for cell in swarm.cells().values():
        assert cell["engine"] == "cluster"
        assert cell["node"]  # the node's host name, from the task
        assert cell["interpreter"]["version"]  # came back in the frame
    assert {c["engine"] for c in local.cells().values()} == {"local"}
    assert services(docker_client) == []
    assert swarm.leftovers == set()
    # the frame never reaches the log
    log = (tmp_path / "cluster" / "logs" / f"{lab_minors[-1]}-slim.log").read_text()
    assert "@@tagmatrix-frame" not in log
    assert "1 failed" in log


@pytest.mark.usefixtures("swarm_ready")
def test_a_timeout_on_swarm_leaves_no_service(tmp_path: Path, docker_client: docker.DockerClient,
                                              lab_minors: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], timeout=5, extra=ENGINES), SLEEPER)
    outcome = tagmatrix("run", "-f", str(path), "--engine", "cluster", "--reports",
                        str(tmp_path / "r"), client=docker_client)
    assert outcome.code == 1
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "timeout"
    assert cell["run_s"] < 5 + 5
    assert services(docker_client) == []


@pytest.mark.usefixtures("swarm_ready")
def test_cancelling_on_swarm_leaves_no_service(tmp_path: Path,
                                               docker_client: docker.DockerClient,
                                               lab_minors: list[str], spawn: Spawn) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:2], extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(tmp_path / "r"))
    # on whichever nodes the Swarm has (make lab-cluster adds workers)
    until("two tasks running", lambda: len(running_tasks(docker_client, process.pid)) >= 2,
          120)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - sent < 7.5
    assert services(docker_client) == []
    # the tasks' containers go with their services, on every node
    until("no container left", lambda: not containers_everywhere(docker_client, process.pid),
          20)


@pytest.mark.usefixtures("swarm_ready")
def test_kill_9_then_clean_removes_the_services(tmp_path: Path,
                                                docker_client: docker.DockerClient,
                                                lab_minors: list[str], spawn: Spawn) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(tmp_path / "r"))
    until("a task running", lambda: running_tasks(docker_client, process.pid), 120)
    process.kill()
    process.communicate(timeout=30)
    assert len(services(docker_client)) == 1
    cleaned = tagmatrix("clean", "-f", str(path))
    assert cleaned.code == 0, cleaned.err
    assert "removed service" in cleaned.out
    assert services(docker_client) == []


@pytest.mark.usefixtures("swarm_ready")
def test_cells_are_routed_by_pins(tmp_path: Path, docker_client: docker.DockerClient,
                                  lab_minors: list[str]) -> None:
    pinned = f"""
engines:
  local: {{type: docker}}
  cluster: {{type: swarm, registry: "{REGISTRY}", cells: ["python={lab_minors[1]}"]}}
"""
    path = make_project(tmp_path, lab_matrix(lab_minors[:2], extra=pinned),
                        {"test_ok.py": "def test_ok():\n    pass\n"})
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        client=docker_client)
    assert outcome.code == 0, outcome.err
    engines = {cell_id: c["engine"] for cell_id, c in outcome.cells().items()}
    assert engines == {f"{lab_minors[0]}-slim": "local", f"{lab_minors[1]}-slim": "cluster"}
    assert services(docker_client) == []
