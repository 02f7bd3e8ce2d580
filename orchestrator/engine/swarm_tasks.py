"""What a Swarm task's state means for its cell, and one poller for every cell's task.

The Swarm engine (``swarm.py``) runs each cell as a service of one task. This
module reads that task: :func:`judge` turns a task and its node into a
:class:`Reading` (still waiting, pulling, running, ended, or an infrastructure
fault as a :class:`CellError` with its stage); :class:`Progress` adds what
one reading cannot tell (how long each phase lasted, the bounds);
:class:`TaskBoard` polls the tasks of all live services and the nodes in one
request each, shared by every waiting cell. Facts behind the rules were
measured on the lab cluster (Docker 20.10.24; README, "Engines"):

- A node that stops answering is marked ``down`` by the managers after its
  heartbeats fail (11-16 s measured). In replicated mode the orchestrator
  then sets its tasks' desired state to ``shutdown`` at once, and when the
  node comes back (a frozen dockerd, a restarted worker) the agent stops the
  task (exit 137 or 255): the task can never finish. So a cell is lost as soon
  as its node is ``down`` or its task is shut down by anyone but us; waiting
  longer would buy nothing.
- A node that cannot pull the image rejects the task with ``No such image``
  within a second (connection refused, unknown manifest, DNS) or ~25 s (a
  registry that accepts connections and never answers); the cause is only in
  that node's dockerd log. Nothing reschedules it.
- ``ExitCode`` is 0 on rejected tasks and on tasks whose container vanished:
  only ``complete``, and ``failed`` with "task: non-zero exit", are results.
"""

from __future__ import annotations

import enum
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import docker.errors

from ..errors import CellError, Stage
from .dockerapi import Translator, is_transient

POLL = 0.25  # seconds between two readings of the tasks
NODE_POLL = 1.0  # seconds between two readings of the nodes
# A task still preparing (pulling its image) after this long fails as a pull error:
# the engine gives up on a silent registry after ~25 s, so this only bounds slow pulls.
PREPARE_LIMIT = 300.0
# A node neither ready nor down (``unknown`` after a manager restart, ``disconnected``)
# this long is treated as lost; ``down`` is lost at once (see the module docstring).
NODE_UNSURE_LIMIT = 60.0
CAPACITY_LABEL = "org.tagmatrix.parallel"  # node label: cells that node runs at once
NAME_MAX = 63  # swarmkit's limit on service names

WAITING = frozenset({"new", "allocated", "pending"})
PREPARING = frozenset({"assigned", "accepted", "preparing", "ready"})
RUNNING = frozenset({"starting", "running"})


def service_name(cell_id: str, run_id: str, serial: int) -> str:
    """``tagmatrix-<cell>-<run>-<serial>``, unique per run, cell and attempt whatever
    their length: a cell id that had to be changed (characters a service name cannot
    hold) or cut (63 characters at most) gets a hash of the whole id, so two cells never
    share a name."""
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", cell_id).strip("-")
    tail = f"-{run_id[-6:]}-{serial}"
    name = f"tagmatrix-{readable}{tail}" if readable else f"tagmatrix{tail}"
    if readable == cell_id and len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(cell_id.encode()).hexdigest()[:10]
    room = NAME_MAX - len("tagmatrix--") - len(digest) - len(tail)
    return re.sub(r"-+", "-", f"tagmatrix-{readable[:room]}-{digest}{tail}")


@dataclass(frozen=True, kw_only=True)
class Node:
    """What the managers know of one node."""

    id: str
    hostname: str
    state: str  # ready | down | unknown | disconnected
    availability: str = "active"  # active | pause | drain
    message: str = ""
    os: str = "linux"
    cpus: int = 1  # as the node reports them (a container's limits are not seen)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Node:
        status = data.get("Status") or {}
        spec = data.get("Spec") or {}
        described = data.get("Description") or {}
        nano = int((described.get("Resources") or {}).get("NanoCPUs") or 0)
        return cls(id=str(data.get("ID", "")),
                   hostname=str(described.get("Hostname") or data.get("ID", "")[:12]),
                   state=str(status.get("State", "unknown")),
                   availability=str(spec.get("Availability", "active")),
                   message=str(status.get("Message") or ""),
                   os=str((described.get("Platform") or {}).get("OS", "linux")).lower(),
                   cpus=max(1, nano // 1_000_000_000),
                   labels={str(k): str(v) for k, v in (spec.get("Labels") or {}).items()})

    @property
    def usable(self) -> bool:
        return self.state == "ready" and self.availability == "active"

    @property
    def capacity(self) -> int:
        """Cells it runs at once: its ``org.tagmatrix.parallel`` label, else its CPUs."""
        try:
            return max(1, int(self.labels[CAPACITY_LABEL]))
        except (KeyError, ValueError):
            return self.cpus


def capacity(nodes: list[Node]) -> int:
    """What a Swarm's ready nodes run at once (0 when none is ready)."""
    return sum(n.capacity for n in nodes if n.usable)


class Phase(enum.Enum):
    """Where a cell's task is."""

    WAITING = "waiting"  # not on a node yet (scheduling, or waiting for room)
    PREPARING = "preparing"  # on a node: pulling the image, creating the container
    RUNNING = "running"
    ENDED = "ended"  # complete, or failed with the tests' exit code
    FAULT = "fault"  # an infrastructure fault: ``error`` holds it
    UNSURE = "unsure"  # its node is neither ready nor down: lost if it lasts


@dataclass(frozen=True, kw_only=True)
class Reading:
    phase: Phase
    exit_code: int | None = None
    error: CellError | None = None
    timestamp: str = ""  # when the task entered its state, as the Swarm says


def _lost(node: Node | None, why: str) -> CellError:
    where = f"node {node.hostname}" if node else "its node"
    return CellError(f"{where} was lost while the cell ran ({why}); the cell will be tried "
                     "again on another node", stage=Stage.ENGINE, retryable=True)


def _node_state(node: Node | None) -> str:
    if node is None:
        return "the node is unknown to the swarm"
    return f"{node.hostname} is {node.state}" + (f": {node.message}" if node.message else "") \
        + (f", availability {node.availability}" if node.availability != "active" else "")


def pull_failure(node: Node | None, image: str, err: str, registry: str) -> CellError:
    """The task's node could not get the image; the fix goes in the message, since only
    the message reaches the reports."""
    where = node.hostname if node else "?"
    said = err.replace(f": {image}", "").strip() or "no image"  # "No such image: <image>"
    return CellError(
        f"node {where} cannot pull {image}: {said} (fix: make {registry} reachable from "
        f"{where} and run `docker pull {image}` there to check; a registry without TLS "
        "outside 127.0.0.0/8 needs an `insecure-registries` entry in that node's "
        "/etc/docker/daemon.json; the cause is in its dockerd log)",
        stage=Stage.PULL)


def judge(task: dict[str, Any], node: Node | None, *, image: str,
          registry: str) -> Reading:
    """What one reading of a cell's task means (pure: no clock, no Docker)."""
    status = task.get("Status") or {}
    state = str(status.get("State", ""))
    err = str(status.get("Err") or "")
    stamp = str(status.get("Timestamp", ""))
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state == "complete":
        return Reading(phase=Phase.ENDED, exit_code=int(code or 0), timestamp=stamp)
    if state == "failed":
        if err.startswith("task: non-zero exit"):
            return Reading(phase=Phase.ENDED, exit_code=code, timestamp=stamp)
        if "No such container" in err:  # the node's dockerd restarted under it
            return Reading(phase=Phase.FAULT, error=_lost(node, err), timestamp=stamp)
        return Reading(phase=Phase.FAULT, timestamp=stamp, error=CellError(
            f"the task failed to start on node {node.hostname if node else '?'}: {err}",
            stage=Stage.RUN, retryable=is_transient(err)))
    if state == "rejected":
        if "no longer meets constraints" in err or (node is not None and node.state == "down"):
            # seen when a worker was killed: its running task "rejected", not shut down
            return Reading(phase=Phase.FAULT, timestamp=stamp,
                           error=_lost(node, f"{err}; {_node_state(node)}"))
        if "image" in err.lower() or "manifest" in err.lower() or "pull" in err.lower():
            error = pull_failure(node, image, err, registry)
        else:
            error = CellError(f"node {node.hostname if node else '?'} rejected the task: {err}",
                              stage=Stage.RUN, retryable=is_transient(err))
        return Reading(phase=Phase.FAULT, error=error, timestamp=stamp)
    if state in ("shutdown", "orphaned", "remove"):
        return Reading(phase=Phase.FAULT, timestamp=stamp,
                       error=_lost(node, f"the swarm stopped its task ({state}); "
                                         + _node_state(node)))
    if task.get("DesiredState") in ("shutdown", "remove", "orphaned"):
        # not by us: we remove the service instead; a down or drained node does this
        return Reading(phase=Phase.FAULT, timestamp=stamp,
                       error=_lost(node, f"the swarm shut its task down; {_node_state(node)}"))
    if node is not None and node.state == "down":
        return Reading(phase=Phase.FAULT, timestamp=stamp,
                       error=_lost(node, _node_state(node)))
    if state in WAITING:
        if "constraints not satisfied" in err:
            return Reading(phase=Phase.FAULT, timestamp=stamp, error=CellError(
                f"no node of the swarm can run it: {err}", stage=Stage.RUN))
        return Reading(phase=Phase.WAITING, timestamp=stamp)  # e.g. insufficient resources
    if node is not None and node.state != "ready":
        return Reading(phase=Phase.UNSURE, timestamp=stamp)
    if state in PREPARING:
        return Reading(phase=Phase.PREPARING, timestamp=stamp)
    if state in RUNNING:
        return Reading(phase=Phase.RUNNING, timestamp=stamp)
    return Reading(phase=Phase.WAITING, timestamp=stamp)


def died_unfinished(task: dict[str, Any], node: Node | None) -> CellError | None:
    """A task that failed with exit 255 and sent no results: the bootstrap never reached
    its end (it sends results whatever the tests' exit code), so its container died
    under it — a worker whose engine restarted faster than the heartbeat timeout, and so
    was never ``down``. A lost node, then, not a test result."""
    status = task.get("Status") or {}
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if status.get("State") == "failed" and code == 255:
        return _lost(node, "its container died with exit 255 before the tests' results "
                           "were sent: did its engine restart?")
    return None


def seconds_between(start: str, end: str) -> float:
    """Seconds between two of the Swarm's timestamps (nanoseconds: cut to microseconds)."""
    try:
        return max(0.0, (_parse(end) - _parse(start)).total_seconds())
    except ValueError:
        return 0.0


def _parse(stamp: str) -> datetime:
    head, _, rest = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00" if rest
                                  else f"{head}+00:00")


@dataclass
class Progress:
    """One cell's task over time: when each phase began (our clock and the Swarm's),
    and the bounds that apply to each."""

    began: float  # when the service was created (monotonic)
    timeout: float  # the cell's test timeout, counted from the task's start
    prepare_limit: float = PREPARE_LIMIT
    unsure_limit: float = NODE_UNSURE_LIMIT
    preparing_at: float | None = None
    preparing_stamp: str = ""
    running_at: float | None = None
    running_stamp: str = ""
    unsure_at: float | None = None

    def see(self, reading: Reading, now: float) -> None:
        if reading.phase is Phase.PREPARING and self.preparing_at is None:
            self.preparing_at, self.preparing_stamp = now, reading.timestamp
        if reading.phase is Phase.RUNNING and self.running_at is None:
            self.running_at, self.running_stamp = now, reading.timestamp
        if reading.phase is Phase.ENDED and self.running_at is None:
            # it ran and ended between two readings: its start is not known
            self.running_at = self.preparing_at if self.preparing_at is not None \
                else self.began
        self.unsure_at = (self.unsure_at or now) if reading.phase is Phase.UNSURE else None

    def overdue(self, now: float, node: Node | None, image: str,
                registry: str) -> CellError | None:
        """An error when a phase other than running lasts too long."""
        where = node.hostname if node else "?"
        if self.unsure_at is not None and now - self.unsure_at >= self.unsure_limit:
            return _lost(node, f"{_node_state(node)} for {self.unsure_limit:.0f} s")
        if self.running_at is None and self.preparing_at is not None \
                and now - self.preparing_at >= self.prepare_limit:
            return CellError(f"node {where} has not pulled {image} in "
                             f"{self.prepare_limit:.0f} s (is {registry} slow or silent "
                             "from that node? its dockerd log says)", stage=Stage.PULL)
        if self.running_at is None and self.preparing_at is None \
                and now - self.began >= self.timeout:
            return CellError(f"no node of the swarm took it in {self.timeout:.0f} s "
                             "(not enough free CPUs or memory for its reservations?)",
                             stage=Stage.RUN)
        return None

    def timed_out(self, now: float) -> bool:
        return self.running_at is not None and now - self.running_at >= self.timeout

    @property
    def pull_s(self) -> float:
        """Time the node spent preparing the task (pulling the image, creating the
        container), from the Swarm's own timestamps; 0 when not seen."""
        if not self.preparing_stamp or not self.running_stamp:
            return 0.0
        return seconds_between(self.preparing_stamp, self.running_stamp)

    def run_s(self, now: float) -> float:
        return now - (self.running_at if self.running_at is not None else self.began)


class TaskBoard:
    """The tasks of every live service and the nodes, read at most every ``POLL`` /
    ``NODE_POLL`` seconds in one request each, whichever cell asks: a hundred waiting
    cells cost the manager four requests a second, not four hundred."""

    def __init__(self, api: Any, errors: Translator) -> None:
        self.api = api
        self.errors = errors
        self._lock = threading.Lock()
        self._services: set[str] = set()
        self._gone: set[str] = set()
        self._tasks: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, Node] = {}
        self._tasks_at = 0.0
        self._nodes_at = 0.0

    def watch(self, sid: str) -> None:
        with self._lock:
            self._services.add(sid)
            self._tasks_at = 0.0  # read the new service's task at once

    def forget(self, sid: str) -> None:
        with self._lock:
            self._services.discard(sid)
            self._gone.discard(sid)
            self._tasks.pop(sid, None)

    def task(self, sid: str) -> dict[str, Any] | None:
        """The service's newest task ({} before it has one); None when the service is
        gone (removed by someone else: ours stop being watched before we remove them)."""
        with self._lock:
            now = time.monotonic()
            if now - self._tasks_at >= POLL and self._services:
                self._tasks, self._tasks_at = self._read(), now
            if sid in self._gone:
                return None
            return self._tasks.get(sid, {})

    def _read(self) -> dict[str, dict[str, Any]]:
        with self.errors.errors(Stage.RUN, "task status"):
            try:
                tasks = self.api.tasks(filters={"service": sorted(self._services)})
            except docker.errors.NotFound:
                # one of them is gone, and the whole request fails with it
                tasks = []
                for sid in sorted(self._services):
                    try:
                        tasks += self.api.tasks(filters={"service": sid})
                    except docker.errors.NotFound:
                        self._gone.add(sid)
        newest: dict[str, dict[str, Any]] = {}
        for task in tasks:
            service = str(task.get("ServiceID", ""))
            if str(task.get("CreatedAt", "")) >= str(newest.get(service, {}).get("CreatedAt", "")):
                newest[service] = task
        return newest

    def nodes(self, *, fresh: bool = False) -> dict[str, Node]:
        with self._lock:
            now = time.monotonic()
            if fresh or now - self._nodes_at >= NODE_POLL:
                with self.errors.errors(Stage.ENGINE, "list the swarm's nodes"):
                    found = self.api.nodes()
                self._nodes = {n.id: n for n in map(Node.of, found)}
                self._nodes_at = now
            return dict(self._nodes)

    def node(self, node_id: str) -> Node | None:
        return self.nodes().get(node_id) if node_id else None
