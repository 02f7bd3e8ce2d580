"""The Swarm engine: each cell is a ``replicated-job`` service on an existing Swarm.

Images are built on the manager's engine (the Docker engine's build code) and
pushed once per build to the configured registry, so every node can pull them;
services refer to them by digest. A service runs one task, never restarted
(a failing test must not be run again behind our back), placed on a node of
the cell's platform, with the cell's limits as limits and reservations.

The exit code comes from the task's status; the output from the service logs
(json-file driver on the task); the interpreter record and the JUnit come back
as a frame at the end of the output (see ``frames.py``): no bind mounts, no
access to the node. Timeout and cancellation remove the service, which stops
its task; every service carries the run's labels.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

import docker
import docker.errors
import requests
from docker.types import (
    ContainerSpec,
    DriverConfig,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from ..celllog import CellLog
from ..errors import CellError, EngineUnavailable, Stage
from ..jobs import BuildSpec, Job
from ..labels import LABEL_CELL, LABEL_MANAGED, LABEL_RUN
from . import (
    Ending,
    EngineInfo,
    Execution,
    Leftover,
    LeftoverKind,
    PreparedImage,
    RunContext,
    Started,
)
from .bootstrap import container_command, container_env
from .dockerapi import Endpoint, is_transient
from .frames import FrameCatcher, FrameError
from .records import interpreter_of, packages_of

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between task status checks
FRAME_CAP = 96 * 1024 * 1024  # the base64 of a 64 MiB JUnit, with room
DONE = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


class SwarmEngine:
    """Cells as replicated-job services on a Swarm, through its manager's API."""

    def __init__(self, name: str, *, endpoint: Endpoint | None = None, registry: str,
                 workers: int = 4, pull: str = "missing") -> None:
        from .docker import DockerEngine  # the manager's engine builds the images

        self.name = name
        self.registry = registry
        self.local = DockerEngine(name, endpoint=endpoint, workers=workers, pull=pull)
        self.api = self.local.api
        self.errors = self.local.errors
        self._pushed: dict[str, PreparedImage] = {}
        self._push_locks: dict[str, threading.Lock] = {}
        self._push_guard = threading.Lock()
        self._hosts: dict[str, str] = {}
        self._info: EngineInfo | None = None
        self._live: dict[str, _Service] = {}
        self._live_lock = threading.Lock()
        self._tokens = itertools.count(1)

    def info(self) -> EngineInfo:
        if self._info is None:
            base = self.local.info()
            with self.errors.errors(Stage.ENGINE, "swarm info"):
                swarm = self.api.info().get("Swarm") or {}
                if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
                    raise EngineUnavailable(
                        f"engine {self.name} is not a Swarm manager "
                        f"(state {swarm.get('LocalNodeState', '?')})",
                        hint="point it at a manager, or `docker swarm init`")
                nodes = self.api.nodes()
            oses = sorted({str(n["Description"]["Platform"]["OS"]).lower() for n in nodes
                           if n["Status"]["State"] == "ready"
                           and n["Spec"].get("Availability") == "active"})
            self._info = replace(base, oses=tuple(oses) or (base.os,),
                                 description=f"swarm of {len(nodes)} node(s) via "
                                             f"{base.description}")
        return self._info

    # -- images --------------------------------------------------------------------------------

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        image = self.local.prepare(job, spec, log, ctx)
        if spec is None:
            raise CellError("mount mode cannot run on a Swarm", stage=Stage.BUILD)
        with self._push_guard:  # one push per image; pushes of different images at once
            lock = self._push_locks.setdefault(spec.key, threading.Lock())
        with lock:
            if spec.key not in self._pushed:
                self._pushed[spec.key] = self._push(image, spec, log)
            return self._pushed[spec.key]

    def _push(self, image: PreparedImage, spec: BuildSpec, cell_log: CellLog) -> PreparedImage:
        name, tag = spec.tag.split(":", 1)
        repository = f"{self.registry}/{name}"
        cell_log.note(f"pushing {repository}:{tag} for the swarm's nodes")
        started = time.monotonic()
        digest = ""
        with self.errors.errors(Stage.PUSH, f"push {repository}:{tag}"):
            self.api.tag(image.id, repository, tag)
            for chunk in self.api.push(repository, tag, stream=True, decode=True):
                if "error" in chunk:
                    message = str(chunk["error"])
                    raise CellError(f"push {repository}:{tag}: {message}", stage=Stage.PUSH,
                                    retryable=is_transient(message))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        if not digest:
            raise CellError(f"push {repository}:{tag} reported no digest", stage=Stage.PUSH)
        cell_log.note(f"pushed {repository}:{tag}@{digest} in {time.monotonic() - started:.1f} s")
        return replace(image, reference=f"{repository}:{tag}@{digest}")

    # -- services ------------------------------------------------------------------------------

    def _service_name(self, job: Job, ctx: RunContext) -> str:
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", f"tagmatrix-{job.id}-{ctx.run_id[-6:]}")
        return name.strip("-")[:63]

    def _create(self, job: Job, image: PreparedImage, ctx: RunContext) -> str:
        labels = {**ctx.labels, LABEL_CELL: job.id}
        limits = job.limits
        task = TaskTemplate(
            container_spec=ContainerSpec(image=image.reference, command=container_command(),
                                         env=[f"{k}={v}" for k, v in
                                              container_env(job, frame=True).items()],
                                         labels=labels),
            restart_policy=RestartPolicy(condition="none"),
            placement=Placement(constraints=[f"node.platform.os=={job.platform}"]),
            resources=Resources(cpu_limit=limits.nano_cpus, mem_limit=limits.memory,
                                cpu_reservation=limits.nano_cpus,
                                mem_reservation=limits.memory),
            log_driver=DriverConfig("json-file", {"max-size": "20m", "max-file": "3"}))
        with self.errors.errors(Stage.RUN, "create service"):
            created = self.api.create_service(task, name=self._service_name(job, ctx),
                                              labels=labels,
                                              mode=ServiceMode("replicated-job", replicas=1))
        return str(created["ID"])

    def start(self, job: Job, image: PreparedImage, log: CellLog,
              ctx: RunContext) -> Started:
        """Nothing runs yet: a service starts its task at once, so it is created on "go"."""
        token = f"{job.id}-{next(self._tokens)}"
        with self._live_lock:
            self._live[token] = _Service(log=log, ctx=ctx, catcher=FrameCatcher(FRAME_CAP))
        log.section(f"run: {' '.join(job.command)} (swarm service)")
        log.restart_excerpt()
        return Started(id=token, job=job, image=image)

    def go(self, started: Started) -> None:
        live = self._live[started.id]
        live.sid = self._create(started.job, started.image, live.ctx)
        catcher, log = live.catcher, live.log
        live.reader = _ServiceLogs(self.local, live.sid,
                                   lambda data: log.output(catcher.feed(data)))
        live.reader.start()
        live.began = time.monotonic()

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        live = self._live[started.id]
        live.task, timed_out, cancelled = self._wait(live.sid, live.began + timeout, ctx)
        status = live.task.get("Status") or {}
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        return Ending(exit_code=code if not (timed_out or cancelled) else None,
                      timed_out=timed_out, cancelled=cancelled,
                      run_s=time.monotonic() - live.began)

    def collect(self, started: Started, ending: Ending, log: CellLog) -> Execution:
        live = self._live[started.id]
        assert live.reader is not None  # started on "go"
        if ending.timed_out:  # the service is gone: what it printed so far is logged
            live.reader.cut()
            log.output(live.catcher.flush())
            return Execution.ended(ending, node=self._node(live.task))
        live.reader.drain(lambda: live.catcher.complete)
        log.output(live.catcher.flush())
        return self._result(live.task, live.catcher, ending.run_s)

    def remove(self, started: Started) -> None:
        with self._live_lock:
            live = self._live.pop(started.id, None)
        if live is None:
            return
        if live.reader is not None:
            live.reader.cut()
        if live.sid:
            self._remove_service(live.sid)
            self._remove_task_container(live.sid, live.task)

    def _result(self, task: dict[str, Any], catcher: FrameCatcher, run_s: float) -> Execution:
        status = task.get("Status") or {}
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        try:
            frame = catcher.frame()
        except FrameError as exc:
            return Execution(exit_code=code, run_s=run_s, junit_error=str(exc),
                             finished_at=str(status.get("Timestamp", "")),
                             node=self._node(task))
        interpreter, started_at = interpreter_of(frame.interpreter)
        packages, install = packages_of(frame.packages)
        return Execution(
            exit_code=code if code is not None else frame.exit_code, run_s=run_s,
            junit=frame.junit, junit_error="" if frame.junit else "no JUnit file in the frame",
            started_at=started_at, finished_at=str(status.get("Timestamp", "")),
            interpreter=interpreter, packages=packages, install=install,
            node=self._node(task))

    def _wait(self, sid: str, deadline: float,
              ctx: RunContext) -> tuple[dict[str, Any], bool, bool]:
        task: dict[str, Any] = {}
        while True:
            if ctx.cancel.is_set():
                self._remove_service(sid)
                return task, False, True
            if time.monotonic() >= deadline:
                self._remove_service(sid)
                return task, True, False
            with self.errors.errors(Stage.RUN, "task status"):
                tasks = self.api.tasks(filters={"service": sid})
            if tasks:
                task = max(tasks, key=lambda t: str(t.get("CreatedAt", "")))
                status = task.get("Status") or {}
                state, err = status.get("State"), str(status.get("Err") or "")
                if state == "rejected" or "no suitable node" in err:
                    raise CellError(f"the swarm cannot run it: {err or status.get('Message')}",
                                    stage=Stage.RUN, retryable=is_transient(err))
                if state in DONE and (status.get("ContainerStatus") or {}).get("ContainerID"):
                    return task, False, False
            time.sleep(POLL)

    def _remove_task_container(self, sid: str, task: dict[str, Any]) -> None:
        """Swarm's agent removes a removed service's task container in its own time;
        when it ran on the manager's own node we remove it now, so a run leaves
        nothing behind when it ends (other nodes' agents reap theirs)."""
        if not task:
            try:
                tasks = self.api.tasks(filters={"service": sid})
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                tasks = []
            task = tasks[0] if tasks else {}
        container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if container:
            self.local.remove_container(str(container))

    def _node(self, task: dict[str, Any]) -> str:
        node = str(task.get("NodeID", ""))
        if node and node not in self._hosts:
            try:
                self._hosts[node] = str(self.api.inspect_node(node)["Description"]["Hostname"])
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                self._hosts[node] = node
        return self._hosts.get(node, "")

    def _remove_service(self, sid: str) -> None:
        try:
            self.api.remove_service(sid)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not remove service %s: %s", sid[:12], exc)

    # -- the whole run -------------------------------------------------------------------------

    def kill_run(self, ctx: RunContext) -> int:
        removed = 0
        try:
            services = self.api.services(filters={"label": f"{LABEL_RUN}={ctx.run_id}"})
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("cannot list this run's services: %s", exc)
            services = []
        for service in services:
            self._remove_service(str(service["ID"]))
            removed += 1
        return removed + self.local.kill_run(ctx)

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        with self.errors.errors(Stage.ENGINE, "list services"):
            services = self.api.services(filters={"label": f"{LABEL_MANAGED}=true"})
        found = [Leftover(LeftoverKind.SERVICE, str(s["ID"]), str(s["Spec"].get("Name", "")),
                          dict(s["Spec"].get("Labels") or {})) for s in services]
        return found + self.local.leftovers(images=images)  # services first: they own tasks

    def remove_leftover(self, item: Leftover) -> None:
        match item.kind:
            case LeftoverKind.SERVICE:
                self._remove_service(item.id)
            case LeftoverKind.CONTAINER | LeftoverKind.IMAGE:
                self.local.remove_leftover(item)
            case _:
                assert_never(item.kind)

    def close(self) -> None:
        self.local.close()


@dataclass
class _Service:
    """A cell's service on the Swarm, from "go" to its removal."""

    log: CellLog
    ctx: RunContext
    catcher: FrameCatcher
    sid: str = ""
    reader: _ServiceLogs | None = None
    task: dict[str, Any] = field(default_factory=dict)
    began: float = 0.0


class _ServiceLogs(threading.Thread):
    """Follows a service's logs into a sink, on its own client (so it can be cut)."""

    def __init__(self, engine: Any, sid: str, sink: Callable[[bytes], None]) -> None:
        super().__init__(name=f"service-logs-{sid[:12]}", daemon=True)
        self.streams = engine.streams
        self.sid = sid
        self.sink = sink
        self.seen = 0
        self._abort: Callable[[], None] | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        try:
            with self.streams.client() as (api, abort):
                self._abort = abort
                self._ready.set()
                for chunk in api.service_logs(self.sid, stdout=True, stderr=True, follow=True):
                    self.seen += len(chunk)
                    self.sink(chunk)
        except Exception as exc:  # noqa: BLE001 - a cut stream is expected after abort()
            log.debug("service logs of %s ended: %s", self.sid[:12], exc)
        finally:
            self._ready.set()

    def drain(self, done: Callable[[], bool], stall: float = 5.0, limit: float = 120.0) -> None:
        """Until the frame has arrived, the stream stalls for ``stall`` s, or ``limit``."""
        deadline = time.monotonic() + limit
        seen, still = self.seen, time.monotonic()
        while self.is_alive() and not done() and time.monotonic() < deadline:
            self.join(0.1)
            if self.seen != seen:
                seen, still = self.seen, time.monotonic()
            elif time.monotonic() - still >= stall:
                break

    def cut(self) -> None:
        if self.is_alive():
            self._ready.wait(1)
            if self._abort is not None:
                self._abort()
            self.join(2)
