"""The Swarm engine on the lab's single-node Swarm, with the lab registry."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO
from tests.integration.conftest import (
    REGISTRY,
    Owner,
    Spawn,
    lab_matrix,
    make_project,
    managed_services,
    read_until_exit,
    run_matrix,
    run_project,
    tagmatrix,
)
from tests.integration.swarmlab import containers_everywhere, until
from tests.integration.workspace import Workspace

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

ENGINES = f"""
engines:
  local: {{type: docker}}
  cluster: {{type: swarm, registry: "{REGISTRY}"}}
"""
SLEEPER = {"test_sleep.py": "import time\n\ndef test_sleep():\n    time.sleep(100000)\n"}


def wait_tasks_running(client: docker.DockerClient, count: int,
                       process: subprocess.Popen[str], timeout: float = 300) -> None:
    """Until ``count`` tasks of the services of ``process`` (a tagmatrix run) are running,
    on whichever node: with the lab cluster up (make lab-cluster), a task may run on a
    worker, whose containers this engine does not list. Fails with the process's output
    when it exits first; the timeout allows a worker's first pull of the images."""
    owner = Owner.of(process)
    deadline = time.monotonic() + timeout
    while True:
        states = [str(task["Status"]["State"]) for service in managed_services(client, owner)
                  # types-docker leaves the service API untyped
                  for task in client.api.tasks(  # type: ignore[no-untyped-call]
                      filters={"service": service})]
        if states.count("running") >= count:
            return
        if process.poll() is not None:
            out, err = process.communicate(timeout=60)
            raise RuntimeError(f"tagmatrix exited with {process.returncode} before {count} "
                               f"tasks ran:\n{(out + err)[-4000:]}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{count} tasks never ran (task states: {states})")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def swarm_ready(docker_client: docker.DockerClient) -> None:
    swarm = docker_client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        pytest.fail("the lab's Swarm is not active (make lab)", pytrace=False)


@pytest.mark.usefixtures("swarm_ready")
def test_the_example_gives_the_same_results_on_swarm_and_local(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str]) -> None:
    project = workspace.folder("sample")
    shutil.copytree(REPO / "examples" / "sample", project, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("reports", "__pycache__"))
    matrix = project / "matrix.yaml"
    matrix.write_text(matrix.read_text() + ENGINES)
    # 3.13 fails by design; each run leaves no container and no service
    local, swarm = (run_project(matrix, client=docker_client, args=("--engine", engine),
                                reports=tmp_path / engine, expect=1)
                    for engine in ("local", "cluster"))

    def shape(cells: dict[str, dict[str, object]]) -> dict[str, tuple[object, object]]:
        return {cell_id: (c["status"], c["tests"]) for cell_id, c in cells.items()}

    assert shape(swarm.cells()) == shape(local.cells())
    for cell in swarm.cells().values():
        assert cell["engine"] == "cluster"
        assert cell["node"]  # the node's host name, from the task
        assert cell["interpreter"]["version"]  # came back in the frame
    assert {c["engine"] for c in local.cells().values()} == {"local"}
    # the frame never reaches the log
    log = (tmp_path / "cluster" / "logs" / f"{lab_minors[-1]}-slim.log").read_text()
    assert "@@tagmatrix-frame" not in log
    assert "1 failed" in log


@pytest.mark.usefixtures("swarm_ready")
def test_a_timeout_on_swarm_leaves_no_service(workspace: Workspace,
                                              docker_client: docker.DockerClient,
                                              lab_minors: list[str]) -> None:
    # run_matrix checks that the run left no service (and no container)
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], timeout=5,
                                                        extra=ENGINES), SLEEPER,
                         client=docker_client, args=("--engine", "cluster"), expect=1)
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "timeout"
    assert cell["run_s"] < 5 + 5


@pytest.mark.usefixtures("swarm_ready")
def test_cancelling_on_swarm_leaves_no_service(workspace: Workspace,
                                               docker_client: docker.DockerClient,
                                               lab_minors: list[str], spawn: Spawn) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2], extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(root / "r"))
    wait_tasks_running(docker_client, 2, process)
    assert len(spawn.services()) == 2
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - sent < 7.5
    assert spawn.services() == set()
    # the tasks' containers go with their services, on every node
    until("no container left", lambda: not containers_everywhere(docker_client, process.pid),
          20)


@pytest.mark.usefixtures("swarm_ready")
def test_kill_9_then_clean_removes_the_services(workspace: Workspace,
                                                docker_client: docker.DockerClient,
                                                lab_minors: list[str], spawn: Spawn) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1], extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(root / "r"))
    wait_tasks_running(docker_client, 1, process)
    process.kill()
    read_until_exit(process, timeout=30)  # not reaped yet: other runs' sweeps keep off
    (service,) = spawn.services()
    (listed,) = docker_client.services.list(filters={"id": service})
    name = listed.name
    process.wait(timeout=30)
    cleaned = tagmatrix("clean", "-f", str(path))
    assert cleaned.code == 0, cleaned.err
    assert f"removed service {name} " in cleaned.out
    assert spawn.services() == set()


@pytest.mark.usefixtures("swarm_ready")
def test_cells_are_routed_by_pins(workspace: Workspace, docker_client: docker.DockerClient,
                                  lab_minors: list[str]) -> None:
    pinned = f"""
engines:
  local: {{type: docker}}
  cluster: {{type: swarm, registry: "{REGISTRY}", cells: ["python={lab_minors[1]}"]}}
"""
    # run_matrix checks that the run left no service (and no container)
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:2], extra=pinned),
                         {"test_ok.py": "def test_ok():\n    pass\n"}, client=docker_client)
    engines = {cell_id: c["engine"] for cell_id, c in outcome.cells().items()}
    assert engines == {f"{lab_minors[0]}-slim": "local", f"{lab_minors[1]}-slim": "cluster"}
