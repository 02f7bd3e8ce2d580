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

from tests.integration.conftest import MANAGED, PID_LABEL

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
    found = api.services(filters={"label": [MANAGED, f"{PID_LABEL}={pid}"]})
    if not found:
        return []
    names = {str(s["ID"]): s["Spec"] for s in found}
    hosts = {str(n["ID"]): str(n["Description"]["Hostname"]) for n in api.nodes()}
    out = []
    for task in api.tasks(filters={"service": list(names)}):
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
