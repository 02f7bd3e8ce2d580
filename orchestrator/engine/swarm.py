"""The Swarm engine: each cell is a service of one task on an existing Swarm.

Images are built on the manager's engine (the Docker engine's build code) and
pushed once per build to the configured registry; every node that runs a cell
pulls it from there, by digest. A service runs one task, never restarted (a
failing test must not be run again behind our back), placed by the Swarm on
any node of the cell's platform, with the cell's limits as limits and
reservations.

Services are ``replicated`` with one replica and restart condition ``none``,
not ``replicated-job``: on Docker 20.10 a replicated-job task's container keeps
running after its service is removed, and finished job containers are never
removed (moby/moby#44312, moby/moby#42789; fixed by swarmkit#3112 in Moby 24).
A replicated task goes with its service, on every node, within its stop grace.

The task's state is read by ``swarm_tasks.py`` (a lost node, a node that
cannot pull, the bounds); the output comes from the service logs; the
interpreter record and the JUnit come back as a frame at the end of the
output (see ``frames.py``): no bind mounts, no access to the node. Timeout
and cancellation remove the service; every service carries the run's labels.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
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
from ..jobs import BuildSpec, InstallStep, Job
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
from .swarm_logs import ServiceLogs
from .swarm_tasks import (
    POLL,
    Node,
    Phase,
    Progress,
    Reading,
    TaskBoard,
    capacity,
    died_unfinished,
    judge,
    service_name,
)

log = logging.getLogger(__name__)

FRAME_CAP = 96 * 1024 * 1024  # the base64 of a 64 MiB JUnit, with room
# A removed service's task gets this long after SIGTERM before SIGKILL: the tests are
# being cut off anyway, and the default 10 s delays every cancellation and timeout.
STOP_GRACE_NS = 1_000_000_000


class SwarmEngine:
    """Cells as one-task services on a Swarm, through its manager's API."""

    def __init__(self, name: str, *, endpoint: Endpoint | None = None, registry: str,
                 workers: int = 4, pull: str = "missing") -> None:
        from .docker import DockerEngine  # the manager's engine builds the images

        self.name = name
        self.registry = registry
        self.local = DockerEngine(name, endpoint=endpoint, workers=workers, pull=pull)
        self.api = self.local.api
        self.errors = self.local.errors
        self.board = TaskBoard(self.api, self.errors)
        self._pushed: dict[str, PreparedImage] = {}
        self._push_locks: dict[str, threading.Lock] = {}
        self._push_guard = threading.Lock()
        self._info: EngineInfo | None = None
        self._manager = ""  # the manager's own node id
        self._live: dict[str, _Service] = {}
        self._live_lock = threading.Lock()
        self._serials = itertools.count(1)

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
            self._manager = str(swarm.get("NodeID", ""))
            nodes = list(self.board.nodes(fresh=True).values())
            ready = [n for n in nodes if n.usable]
            self._info = replace(
                base, oses=tuple(sorted({n.os for n in ready})) or (base.os,),
                capacity=capacity(nodes),
                description=f"swarm of {len(nodes)} node(s), {len(ready)} ready "
                            f"({', '.join(sorted(n.hostname for n in ready))}), via "
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

    def _task_template(self, job: Job, image: PreparedImage,
                       labels: dict[str, str]) -> TaskTemplate:
        limits = job.limits
        resources = Resources(cpu_limit=limits.nano_cpus, mem_limit=limits.memory,
                              cpu_reservation=limits.nano_cpus, mem_reservation=limits.memory)
        # The service API has a pids limit (API 1.41) that docker-py's Resources lacks.
        # Docker 20.10's has no swap setting (moby/moby#34654): on a node with swap a task
        # may swap as much again as its memory limit (the Docker engine forbids it).
        resources.setdefault("Limits", {})["Pids"] = limits.pids
        return TaskTemplate(
            container_spec=ContainerSpec(
                image=image.reference, command=container_command(),
                env=[f"{k}={v}" for k, v in container_env(job, frame=True).items()],
                labels=labels, stop_grace_period=STOP_GRACE_NS,
                # the same capabilities as on a Docker engine (settings.DROPPED_CAPABILITIES)
                cap_drop=list(limits.cap_drop), cap_add=list(limits.cap_add) or None),
            restart_policy=RestartPolicy(condition="none"),
            placement=Placement(constraints=[f"node.platform.os=={job.platform}"]),
            resources=resources,
            log_driver=DriverConfig("json-file", {"max-size": "20m", "max-file": "3"}))

    def _create(self, job: Job, image: PreparedImage, ctx: RunContext) -> str:
        labels = {**ctx.labels, LABEL_CELL: job.id}
        task = self._task_template(job, image, labels)
        name = service_name(job.id, ctx.run_id, next(self._serials))
        with self.errors.errors(Stage.RUN, f"create service {name}"):
            # replicated, one replica, never restarted: see the module docstring for why
            # not replicated-job (moby/moby#44312)
            created = self.api.create_service(task, name=name, labels=labels,
                                              mode=ServiceMode("replicated", replicas=1))
        return str(created["ID"])

    def start(self, job: Job, image: PreparedImage, log: CellLog,
              ctx: RunContext) -> Started:
        """Nothing runs yet: a service starts its task at once, so it is created on "go"."""
        token = f"{job.id}-{next(self._serials)}"
        with self._live_lock:
            self._live[token] = _Service(log=log, ctx=ctx, catcher=FrameCatcher(FRAME_CAP))
        log.section(f"run: {' '.join(job.command)} (swarm service)")
        log.restart_excerpt()
        return Started(id=token, job=job, image=image)

    def go(self, started: Started) -> None:
        live = self._live[started.id]
        live.sid = self._create(started.job, started.image, live.ctx)
        self.board.watch(live.sid)
        catcher, log = live.catcher, live.log
        live.reader = ServiceLogs(self.local, live.sid,
                                  lambda data: log.output(catcher.feed(data)))
        live.reader.start()
        live.began = time.monotonic()

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        live = self._live[started.id]
        live.progress = Progress(began=live.began, timeout=timeout)
        reading, timed_out, cancelled = self._follow(live, started.image.reference, ctx)
        return Ending(exit_code=reading.exit_code if reading else None,
                      timed_out=timed_out, cancelled=cancelled,
                      run_s=live.progress.run_s(time.monotonic()))

    def _follow(self, live: _Service, image: str,
                ctx: RunContext) -> tuple[Reading | None, bool, bool]:
        """Until the task ends, the timeout passes or the run is cancelled; an
        infrastructure fault (a lost node, a failed pull) raises its CellError."""
        progress = live.progress
        assert progress is not None
        while True:
            if ctx.cancel.is_set():
                self._remove_service(live.sid)
                return None, False, True
            now = time.monotonic()
            if progress.timed_out(now):
                self._remove_service(live.sid)
                return None, True, False
            task = self.board.task(live.sid)
            if task is None:
                raise CellError("its service was removed by someone else (tagmatrix clean "
                                "--all-hosts, docker service rm?)", stage=Stage.RUN)
            if task:
                live.task = task
                reading = self._read(live, task, image)
                before = progress.running_at
                progress.see(reading, now)
                if before is None and progress.running_at is not None and progress.pull_s:
                    live.log.note(f"node {live.where} prepared the task (pulling the image, "
                                  f"creating the container) in {progress.pull_s:.1f} s")
                if reading.phase is Phase.ENDED:
                    return reading, False, False
                if reading.error is not None:
                    raise reading.error
            error = progress.overdue(now, live.node, image, self.registry)
            if error is not None:
                raise error
            time.sleep(POLL)

    def _read(self, live: _Service, task: dict[str, Any], image: str) -> Reading:
        node = self.board.node(str(task.get("NodeID") or "")) or live.node
        self._placed(live, node)
        reading = judge(task, node, image=image, registry=self.registry)
        if reading.error is not None and reading.error.stage is Stage.ENGINE and node:
            # the nodes are read once a second: say what the node is now
            node = self.board.nodes(fresh=True).get(node.id, node)
            reading = judge(task, node, image=image, registry=self.registry)
        return reading

    def _placed(self, live: _Service, node: Node | None) -> None:
        if node is not None and live.node is None:
            live.log.note(f"the swarm placed the task on node {node.hostname}")
        live.node = node or live.node

    def collect(self, started: Started, ending: Ending, log: CellLog) -> Execution:
        live = self._live[started.id]
        assert live.reader is not None  # started on "go"
        if ending.timed_out:  # the service is gone: what it printed so far is logged
            live.reader.cut()
            log.output(live.catcher.flush())
            return replace(Execution.ended(ending, node=live.where), pull_s=self._pull_s(live))
        live.reader.drain(lambda: live.catcher.complete)
        log.output(live.catcher.flush())
        return self._result(live, ending, started.job.install_step)

    def remove(self, started: Started) -> None:
        with self._live_lock:
            live = self._live.pop(started.id, None)
        if live is None:
            return
        if live.reader is not None:
            live.reader.cut()
        if live.sid:
            self._remove_service(live.sid)
            self._remove_task_container(live)

    def _result(self, live: _Service, ending: Ending,
                install_step: InstallStep | None) -> Execution:
        status = live.task.get("Status") or {}
        code = ending.exit_code
        finished = str(status.get("Timestamp", ""))
        try:
            frame = live.catcher.frame()
        except FrameError as exc:
            died = died_unfinished(live.task, live.node)
            if died is not None and not live.catcher.too_large:
                raise died from exc
            return Execution(exit_code=code, run_s=ending.run_s, junit_error=str(exc),
                             finished_at=finished, node=live.where, pull_s=self._pull_s(live))
        interpreter, started_at = interpreter_of(frame.interpreter)
        packages, install = packages_of(frame.packages, install_step)
        return Execution(
            exit_code=code if code is not None else frame.exit_code, run_s=ending.run_s,
            junit=frame.junit, junit_error="" if frame.junit else "no JUnit file in the frame",
            started_at=started_at, finished_at=finished,
            interpreter=interpreter, packages=packages, install=install,
            warnings=frame.warnings, node=live.where, pull_s=self._pull_s(live))

    @staticmethod
    def _pull_s(live: _Service) -> float:
        return live.progress.pull_s if live.progress is not None else 0.0

    def _remove_task_container(self, live: _Service) -> None:
        """Each node's agent removes a removed service's task container within the stop
        grace; on the manager's own node we remove it at once, so a run that ends there
        leaves nothing behind when it returns."""
        status = live.task.get("Status") or {}
        container = (status.get("ContainerStatus") or {}).get("ContainerID")
        if container and live.task.get("NodeID") == self._manager:
            self.local.remove_container(str(container))

    def _remove_service(self, sid: str) -> None:
        self.board.forget(sid)  # before it is gone: the board reads all services at once
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
    reader: ServiceLogs | None = None
    task: dict[str, Any] = field(default_factory=dict)
    node: Node | None = None  # where the Swarm placed the task
    progress: Progress | None = None
    began: float = 0.0

    @property
    def where(self) -> str:
        return self.node.hostname if self.node is not None else ""
