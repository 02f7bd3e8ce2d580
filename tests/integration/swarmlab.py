"""What the Swarm tests look at: one tagmatrix process's services and tasks, and its
containers on every node of the lab's Swarm (the manager, and the lab cluster's
Docker-in-Docker workers when `make lab-cluster` is up).

Everything is scoped by the process's pid label: other runs share the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker

from orchestrator.labels import LABEL_PID as PID_LABEL
from tests.integration.conftest import MANAGED, REGISTRY

NODE_PREFIX = "tagmatrix-lab-node-"  # lab/cluster.sh
NODE_LABEL = "org.tagmatrix.lab=node"


def services(client: docker.DockerClient, pid: int | None = None) -> list[str]:
    """Names of tagmatrix's services (of one process, when ``pid``)."""
    labels = [MANAGED] + ([f"{PID_LABEL}={pid}"] if pid else [])
    api: Any = client.api  # the stubs leave the swarm calls untyped
    return [str(s["Spec"]["Name"]) for s in api.services(filters={"label": labels})]


@dataclass(frozen=True)
class Task:
    service: str  # the service's name
    cell: str
    node: str  # host name, "" while unassigned
    state: str
    created: str


def tasks(client: docker.DockerClient, pid: int) -> list[Task]:
    """The tasks of one tagmatrix process's services, oldest first."""
    api: Any = client.api
    for _ in range(10):
        found = api.services(filters={"label": [MANAGED, f"{PID_LABEL}={pid}"]})
        if not found:
            return []
        names = {str(s["ID"]): s["Spec"] for s in found}
        try:
            listed = api.tasks(filters={"service": list(names)})
        except docker.errors.NotFound:
            # a service filter naming a service removed since it was listed is a 404
            # ("service ... not found"): tagmatrix removes each cell's service as the
            # cell ends, so list the services again
            continue
        break
    else:
        raise AssertionError(f"the services of process {pid} kept vanishing while listed")
    hosts = {str(n["ID"]): str(n["Description"]["Hostname"]) for n in api.nodes()}
    out = []
    for task in listed:
        spec = names.get(str(task.get("ServiceID")))
        if spec is None:
            continue
        out.append(Task(service=str(spec["Name"]),
                        cell=str((spec.get("Labels") or {}).get("org.tagmatrix.cell", "")),
                        node=hosts.get(str(task.get("NodeID") or ""), ""),
                        state=str(task["Status"]["State"]), created=str(task["CreatedAt"])))
    return sorted(out, key=lambda t: t.created)


def until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something true; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def running_tasks(client: docker.DockerClient, pid: int) -> list[Task]:
    return [t for t in tasks(client, pid) if t.state == "running"]


def worker_nodes(client: docker.DockerClient) -> list[Any]:
    """The lab cluster's running worker containers (none without `make lab-cluster`)."""
    return sorted(client.containers.list(filters={"label": NODE_LABEL, "name": NODE_PREFIX}),
                  key=lambda c: c.name)


def containers_everywhere(client: docker.DockerClient, pid: int) -> dict[str, list[str]]:
    """Per node (the manager as "manager", each worker by name): ids of the containers
    that tagmatrix process created there, running or not."""
    found = {"manager": [str(c["Id"]) for c in client.api.containers(
        all=True, filters={"label": [MANAGED, f"{PID_LABEL}={pid}"]})]}
    for node in worker_nodes(client):
        code, out = node.exec_run(["docker", "ps", "-aq", "--no-trunc", "--filter",
                                   f"label={PID_LABEL}={pid}"])
        assert code == 0, out
        found[node.name] = out.decode().split()
    return {where: ids for where, ids in found.items() if ids}


def node_ready(client: docker.DockerClient, host: str) -> bool:
    return any(n["Description"]["Hostname"] == host and n["Status"]["State"] == "ready"
               for n in client.api.nodes())


def wait_ready(client: docker.DockerClient, host: str) -> None:
    until(f"{host} ready", lambda: node_ready(client, host), 90)


def forwarder(client: docker.DockerClient, name: str, *, on: bool) -> None:
    """Stop or start a worker's registry forwarder (lab/node-entrypoint started it and
    recorded its pid): without it the node cannot reach the registry."""
    node = client.containers.get(name)
    probe = ["curl", "-fsS", "-m", "2", f"http://{REGISTRY}/v2/"]
    if on:
        if node.exec_run(probe).exit_code == 0:
            return
        gateway = node.attrs["Config"]["Env"]
        target = next(e.split("=", 1)[1] for e in gateway if e.startswith("LAB_GATEWAY="))
        node.exec_run(["sh", "-c", "setsid socat TCP-LISTEN:5000,bind=127.0.0.1,reuseaddr,"
                       f"fork TCP:{target}:5000 </dev/null >/dev/null 2>&1 & "
                       "echo $! >/run/registry-forwarder.pid"])
        until(f"{name} reaches the registry", lambda: node.exec_run(probe).exit_code == 0, 10)
    else:
        node.exec_run(["sh", "-c", "kill $(cat /run/registry-forwarder.pid)"])
        until(f"{name} cut off from the registry", lambda: node.exec_run(probe).exit_code != 0,
              10)


def disrupt(client: docker.DockerClient, name: str, how: str) -> None:
    """Lose a worker: kill its container, stop its dockerd (the node stops with it, see
    lab/node-entrypoint), freeze it, or kill it and start it again at once."""
    node = client.containers.get(name)
    match how:
        case "kill":
            node.kill()
        case "stop-dockerd":
            done = node.exec_run(["sh", "-c", "kill -TERM $(cat /var/run/docker.pid)"])
            assert done.exit_code == 0, done.output
        case "freeze":
            node.pause()
        case "restart":  # back before its heartbeats fail: the Swarm never sees it down
            node.kill()
            node.start()
        case _:
            raise ValueError(how)


def revive(client: docker.DockerClient, name: str, how: str) -> None:
    node = client.containers.get(name)
    if how == "freeze":
        node.unpause()
    elif how != "restart":
        until(f"{name} stopped", lambda: client.containers.get(name).status == "exited", 30)
        node.start()
    wait_ready(client, name)
