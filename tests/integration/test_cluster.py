"""The Swarm engine on the lab's multi-node cluster (`make lab-cluster`): placement on
several nodes, image distribution through the registry, a node lost mid-run, a node
that cannot pull, and cleanup on every node.

These tests fail (they do not skip) when the cluster is not up; `make test-cluster`
brings it up, runs them and takes it down again. They disturb only the lab's worker
nodes (a killed worker is started again, a stopped registry forwarder restarted),
never the manager's engine or the registry.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import REPO
from tests.integration.conftest import (
    REGISTRY,
    Outcome,
    Spawn,
    lab_matrix,
    make_project,
    tagmatrix,
)
from tests.integration.swarmlab import (
    containers_everywhere,
    disrupt,
    forwarder,
    revive,
    running_tasks,
    services,
    tasks,
    until,
    wait_ready,
    worker_nodes,
)

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

ENGINES = f"""
engines:
  cluster: {{type: swarm, registry: "{REGISTRY}"}}
"""
SLEEPER = {"test_sleep.py": "import time\n\ndef test_sleep():\n    time.sleep(100000)\n"}


def slow(seconds: float) -> dict[str, str]:
    return {"test_slow.py": f"import time\n\ndef test_slow():\n    time.sleep({seconds})\n"}


@pytest.fixture(scope="module")
def cluster(docker_client: docker.DockerClient) -> list[str]:
    """The lab cluster's worker nodes (two or more, ready); fails when it is not up."""
    hosts = {str(n["Description"]["Hostname"]): n for n in docker_client.api.nodes()}
    workers = [c.name for c in worker_nodes(docker_client)]
    ready = [w for w in workers if w in hosts and hosts[w]["Status"]["State"] == "ready"]
    if len(ready) < 2:
        pytest.fail(f"the lab cluster is not up (ready workers: {ready or 'none'}); run "
                    "`make lab-cluster`", pytrace=False)
    return ready


@dataclass(frozen=True)
class Lab:
    client: docker.DockerClient
    minors: list[str]
    workers: list[str]


@pytest.fixture
def lab(docker_client: docker.DockerClient, lab_minors: list[str],
        cluster: list[str]) -> Lab:
    return Lab(client=docker_client, minors=lab_minors, workers=cluster)


@pytest.fixture
def restore_nodes(docker_client: docker.DockerClient) -> Iterator[None]:
    """Whatever a test did to the workers, they are running, ready and forwarding the
    registry again afterwards."""
    yield
    for node in docker_client.containers.list(all=True, filters={"label":
                                                                 "org.tagmatrix.lab=node"}):
        node.reload()
        if node.status == "paused":
            node.unpause()
        elif node.status != "running":
            node.start()
        wait_ready(docker_client, str(node.name))
        forwarder(docker_client, str(node.name), on=True)


def example(tmp_path: Path) -> Path:
    project = tmp_path / "sample"
    shutil.copytree(REPO / "examples" / "sample", project,
                    ignore=shutil.ignore_patterns("reports", "__pycache__"))
    matrix = project / "matrix.yaml"
    matrix.write_text(matrix.read_text() + ENGINES + "  local: {type: docker}\n")
    return matrix


def watch(process: Any, client: docker.DockerClient) -> dict[str, tuple[float, float]]:
    """Until ``process`` ends: per service, when this test first and last saw it."""
    seen: dict[str, tuple[float, float]] = {}
    while process.poll() is None:
        now = time.monotonic()
        for name in services(client, process.pid):
            seen[name] = (seen.get(name, (now, now))[0], now)
        time.sleep(0.1)
    return seen


def outcome_of(process: Any, reports: Path) -> Outcome:
    out, err = process.communicate(timeout=60)
    return Outcome(process.returncode, out, err, reports)


@pytest.mark.usefixtures("cluster")
def test_the_example_spreads_over_nodes_with_the_same_results_as_one_engine(
        tmp_path: Path, docker_client: docker.DockerClient, spawn: Spawn,
        cluster: list[str]) -> None:
    matrix = example(tmp_path)
    local = tagmatrix("run", "-f", str(matrix), "--engine", "local", "--reports",
                      str(tmp_path / "local"), client=docker_client)
    process = spawn("run", "-f", str(matrix), "--engine", "cluster", "--reports",
                    str(tmp_path / "cluster"))
    swarm = outcome_of(process, tmp_path / "cluster")
    assert local.code == swarm.code == 1, swarm.err  # 3.13 fails by design

    def shape(cells: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
        return {cell_id: (c["status"], c["tests"]) for cell_id, c in cells.items()}

    assert shape(swarm.cells()) == shape(local.cells())
    # the failing cell ran once: a finished task is never started again
    assert {len(c["attempts"]) for c in swarm.cells().values()} == {1}
    failing = (tmp_path / "cluster" / "logs" / f"{max(swarm.cells())}.log").read_text()
    assert len(re.findall(r"^1 failed, 4 passed, 1 skipped in ", failing, re.M)) == 1
    nodes = {cell_id: c["node"] for cell_id, c in swarm.cells().items()}
    assert len(set(nodes.values())) >= 2, nodes
    on_workers = {cell_id: n for cell_id, n in nodes.items() if n in cluster}
    assert on_workers, nodes
    for cell_id, node in on_workers.items():  # the node pulled the pushed image by digest
        reference = swarm.cells()[cell_id]["built_image"]
        found = docker_client.containers.get(node).exec_run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", reference])
        assert found.exit_code == 0, (node, reference, found.output)
    # parallel: what the ready nodes run (the workers' org.tagmatrix.parallel labels, the
    # manager's CPUs), since the file sets none
    expected = sum(int((n["Spec"].get("Labels") or {}).get("org.tagmatrix.parallel")
                       or n["Description"]["Resources"]["NanoCPUs"] // 10**9)
                   for n in docker_client.api.nodes() if n["Status"]["State"] == "ready"
                   and n["Spec"]["Availability"] == "active")
    log = (tmp_path / "cluster" / "tagmatrix.log").read_text()
    assert f"engine cluster: 4 cell(s), {expected} at once" in log
    summary_md = (tmp_path / "cluster" / "summary.md").read_text()
    assert "| node |" in summary_md
    for cell_id, node in nodes.items():
        assert re.search(rf"\| `{re.escape(cell_id)}` \|[^\n]*\| {re.escape(node)} \|",
                         summary_md), (cell_id, node)
    assert services(docker_client, process.pid) == []
    until("no container left on any node",
          lambda: not containers_everywhere(docker_client, process.pid), 20)


@pytest.mark.usefixtures("cluster", "restore_nodes")
@pytest.mark.parametrize("how", ["kill", "stop-dockerd", "freeze", "restart"])
def test_a_worker_lost_mid_run_gives_an_error_attempt_and_a_retry_elsewhere(
        tmp_path: Path, lab: Lab, spawn: Spawn, how: str) -> None:
    docker_client, lab_minors, cluster = lab.client, lab.minors, lab.workers
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES, timeout=300),
                        slow(25))
    reports = tmp_path / "r"
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports", str(reports))
    victim_task = until("a cell running on a worker", lambda: next(
        (t for t in running_tasks(docker_client, process.pid) if t.node in cluster), None), 180)
    victim = victim_task.node
    disrupt(docker_client, victim, how)
    killed = time.monotonic()
    retry = until("the cell tried again", lambda: next(
        (t for t in tasks(docker_client, process.pid)
         if t.cell == victim_task.cell and t.service != victim_task.service), None), 120)
    retried = time.monotonic() - killed
    outcome = outcome_of(process, reports)
    assert outcome.code == 0, outcome.err  # nothing lost, nothing failed: as any green run
    cells = outcome.cells()
    assert set(cells) == {f"{m}-slim" for m in lab_minors}
    assert {c["status"] for c in cells.values()} == {"passed"}
    retried_cells = {cell_id for cell_id, c in cells.items() if len(c["attempts"]) > 1}
    assert victim_task.cell in retried_cells  # and any other cell the victim ran
    for cell_id in retried_cells:
        cell = cells[cell_id]
        first, last = cell["attempts"][0], cell["attempts"][-1]
        assert (first["status"], first["stage"]) == ("error", "engine"), first
        assert first["reason"].startswith(f"node {victim} was lost while the cell ran ("), first
        assert (len(cell["attempts"]), last["status"]) == (2, "passed")
        if how == "restart":  # back at once: the retry may run there again
            assert "died with exit 255" in first["reason"]
        else:
            assert f"{victim} is down" in first["reason"]
            assert cell["node"] != victim
    if how != "restart":
        assert retry.node != victim
    assert f"node {victim} was lost" in (reports / "index.html").read_text()
    assert json.loads((reports / "results.json").read_text())["summary"]["passed"] == len(cells)
    assert services(docker_client, process.pid) == []
    print(f"\nnode {victim} lost ({how}): cell {victim_task.cell} retried after "
          f"{retried:.1f} s")
    # the node comes back (a frozen one too); its agent removes the task of the removed
    # service, which the Swarm had shut down anyway
    revive(docker_client, victim, how)
    until("no container left on any node",
          lambda: not containers_everywhere(docker_client, process.pid), 30)


@pytest.mark.usefixtures("cluster", "restore_nodes")
def test_a_node_that_cannot_pull_fails_its_cell_quickly_as_a_pull_error(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn, cluster: list[str]) -> None:
    # a fresh project image, so that no worker has it yet
    tests = {**slow(10), "test_fresh.py": f"TOKEN = {uuid.uuid4().hex!r}\n\n"
                                          "def test_token():\n    assert TOKEN\n"}
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES), tests)
    for worker in cluster:
        forwarder(docker_client, worker, on=False)
    reports = tmp_path / "r"
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports", str(reports))
    seen = watch(process, docker_client)
    outcome = outcome_of(process, reports)
    cells = outcome.cells()
    failed = {cell_id: c for cell_id, c in cells.items() if c["status"] == "error"}
    assert failed, f"no cell was placed on a worker: {[c['node'] for c in cells.values()]}"
    assert outcome.code == 1
    for cell_id, cell in cells.items():
        if cell_id in failed:
            assert cell["stage"] == "pull", cell
            named = re.match(r"node (\S+) cannot pull ", cell["reason"])
            assert named, cell["reason"]
            assert named.group(1) in cluster
            assert "insecure-registries" in cell["reason"]  # the fix
            assert len(cell["attempts"]) == 1  # a node's configuration: not retried
        else:
            assert cell["status"] == "passed", cell
            assert cell["node"] not in cluster
    # from the service's creation to its removal after the rejection
    lived = [last - first for name, (first, last) in seen.items()
             if any(name.startswith(f"tagmatrix-{c.replace('.', '-')}-") for c in failed)]
    assert lived
    assert max(lived) < 15, lived
    print(f"\npull failures detected within {max(lived):.1f} s of the service's creation")
    assert services(docker_client, process.pid) == []


@pytest.mark.usefixtures("cluster")
def test_sigint_mid_run_leaves_no_service_and_no_container_on_any_node(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn, cluster: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(tmp_path / "r"))
    def spread() -> bool:
        nodes = {t.node for t in running_tasks(docker_client, process.pid)}
        return len(nodes) >= 2 and bool(nodes & set(cluster))

    until("cells running on a worker and one more node", spread, 180)
    assert containers_everywhere(docker_client, process.pid)  # the check can see them
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert services(docker_client, process.pid) == []
    until("no container left on any node",
          lambda: not containers_everywhere(docker_client, process.pid), 20)
    print(f"\nSIGINT: every node clean {time.monotonic() - sent:.1f} s after the signal")


@pytest.mark.usefixtures("cluster")
def test_timeouts_on_workers_leave_nothing_on_any_node(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn, cluster: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES, timeout=8), SLEEPER)
    reports = tmp_path / "r"
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports", str(reports))
    outcome = outcome_of(process, reports)
    assert outcome.code == 1, outcome.err
    cells = outcome.cells()
    assert {c["status"] for c in cells.values()} == {"timeout"}
    assert {c["node"] for c in cells.values()} & set(cluster), cells
    assert services(docker_client, process.pid) == []
    until("no container left on any node",
          lambda: not containers_everywhere(docker_client, process.pid), 20)


@pytest.mark.usefixtures("cluster")
def test_kill_9_then_clean_removes_services_and_containers_on_workers(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn, cluster: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES), SLEEPER)
    process = spawn("run", "-f", str(path), "--engine", "cluster", "--reports",
                    str(tmp_path / "r"))
    until("a cell running on a worker", lambda: any(
        t.node in cluster for t in running_tasks(docker_client, process.pid)), 180)
    process.kill()
    process.communicate(timeout=30)
    assert services(docker_client, process.pid)
    cleaned = tagmatrix("clean", "-f", str(path))
    assert cleaned.code == 0, cleaned.err
    assert services(docker_client, process.pid) == []
    until("no container left on any node",
          lambda: not containers_everywhere(docker_client, process.pid), 20)


@pytest.mark.usefixtures("cluster")
def test_swarm_cells_get_the_docker_engines_limits_capabilities_and_no_new_privs(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    check = """
        def test_limits():
            pids = open("/sys/fs/cgroup/pids/pids.max").read().strip()
            assert pids == "4096", pids
            caps = [l for l in open("/proc/self/status") if l.startswith("CapEff:")][0]
            effective = int(caps.split()[1], 16)
            for bit, name in ((13, "NET_RAW"), (27, "MKNOD"), (29, "AUDIT_WRITE"),
                              (31, "SETFCAP"), (18, "SYS_CHROOT")):
                assert not effective & (1 << bit), name  # dropped as on a Docker engine
            assert effective & (1 << 0), "CAP_CHOWN stays"
            assert "NoNewPrivs:\t1" in open("/proc/self/status").read()
    """
    path = make_project(tmp_path, lab_matrix(lab_minors, extra=ENGINES),
                        {"test_limits.py": check})
    outcome = tagmatrix("run", "-f", str(path), "--engine", "cluster", "--reports",
                        str(tmp_path / "r"), client=docker_client)
    assert outcome.code == 0, (outcome.err, outcome.cells())
    assert {c["tests"]["passed"] for c in outcome.cells().values()} == {1}


@pytest.mark.usefixtures("cluster")
def test_long_cell_ids_that_share_their_first_63_characters_both_run(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    head = "a" * 70
    matrix = lab_matrix(lab_minors[:1], extra=ENGINES).replace(
        "  variant: [slim]\n", f'  variant: [slim]\n  suite: ["{head}-one", "{head}-two"]\n')
    path = make_project(tmp_path, matrix, {"test_ok.py": "def test_ok():\n    pass\n"})
    outcome = tagmatrix("run", "-f", str(path), "--engine", "cluster", "--reports",
                        str(tmp_path / "r"), client=docker_client)
    assert outcome.code == 0, (outcome.err, outcome.cells())
    assert len(outcome.cells()) == 2


@pytest.mark.usefixtures("cluster")
def test_a_test_container_cannot_push_to_the_registry_the_workers_pull_from(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    probe = {"test_push.py": f"""
        import urllib.error, urllib.request

        def test_the_gateway_registry_serves_pulls_and_refuses_uploads():
            base = "http://{gateway}:5000/v2"
            with urllib.request.urlopen(base + "/library/python/tags/list", timeout=10) as r:
                assert r.status == 200  # the workers pull through it
            upload = urllib.request.Request(base + "/attack/blobs/uploads/", method="POST")
            try:
                urllib.request.urlopen(upload, timeout=10)
            except urllib.error.HTTPError as exc:
                assert exc.code == 405, exc.code
            else:
                raise AssertionError("the registry on the gateway accepted an upload")
    """}
    path = make_project(tmp_path, lab_matrix(lab_minors[:1]), probe)
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        client=docker_client)
    assert outcome.code == 0, (outcome.out, outcome.err)
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 1
