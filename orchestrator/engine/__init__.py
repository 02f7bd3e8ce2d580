"""The engine interface: the only place where side effects on Docker happen.

Everything before (config, expansion, planning) is pure; the scheduler drives a
cell's life on an engine in phases and owns every concurrency decision:

    prepare(job)          the image: pull the base, build (shared between cells)
    start(job, image)     create the container and start it up to the bootstrap's
                          wait for "go" (ahead of its turn: start-up costs overlap)
    -- the scheduler takes one of the run's ``parallel`` slots --
    go(started)           the tests begin
    wait(started, ...)    until exit, deadline or cancellation
    -- the scheduler gives the slot back --
    collect(started, ...) exit code, per-test JUnit, the interpreter's record
    remove(started)       always, in ``finally``

An engine never sees a slot, so none can forget one. Cleanup of what runs left
behind is a protocol of its own (:class:`Janitor`). Implementations: ``docker``
(a local or remote Docker engine) and ``swarm`` (services on a Docker Swarm).
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..celllog import CellLog
from ..containerrecords import InstallRecord, Interpreter
from ..jobs import BuildSpec, Job
from ..labels import LABEL_RUN


class LeftoverKind(enum.StrEnum):
    """What tagmatrix creates on an engine."""

    SERVICE = "service"  # first: a service owns its tasks' containers
    CONTAINER = "container"
    IMAGE = "image"  # the build cache; removed only when asked



@dataclass(frozen=True)
class Leftover:
    """One object an engine holds that carries tagmatrix's labels."""

    kind: LeftoverKind
    id: str
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.labels.get(LABEL_RUN, "")


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    """What an engine reports about itself."""

    name: str
    os: str  # "linux" / "windows"
    arch: str
    version: str
    api_version: str = ""
    cpus: int = 0  # what the engine reports (a Swarm: its first node's host)
    oses: tuple[str, ...] = ()  # every platform it can run (a Swarm may mix); () = (os,)
    node: str = ""  # host name of the engine (a Swarm engine reports per task)
    description: str = ""
    capacity: int = 0  # cells it runs at once by its own measure (a Swarm's nodes); 0: none


@dataclass(frozen=True, kw_only=True)
class BaseImage:
    """A resolved base image."""

    reference: str
    id: str
    digest: str = ""  # repo digest (sha256:...) when the image came from a registry
    size: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PreparedImage:
    """The image a job's container runs from."""

    reference: str  # what to pass to create_container
    id: str
    base: BaseImage
    size: int = 0
    workdir: str = ""
    build_s: float = 0.0
    cached: bool = False  # every build step came from the cache
    project_digest: str = ""  # the build context's content (see engine/context.py)
    mount: str = ""  # mount mode: the host folder its containers bind (engine/mountcopy.py)


@dataclass(frozen=True, kw_only=True)
class Started:
    """A cell's container (or service) made ready by :meth:`Engine.start`; the engine
    keeps its own state under ``id``."""

    id: str
    job: Job
    image: PreparedImage


@dataclass(frozen=True, kw_only=True)
class Ending:
    """How the wait ended."""

    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    run_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Execution:
    """What happened in the container."""

    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    oom_killed: bool = False
    started_at: str = ""
    finished_at: str = ""
    run_s: float = 0.0
    junit: bytes | None = None
    junit_error: str = ""  # why the JUnit file could not be collected
    setup_failed: bool = False
    interpreter: Interpreter = field(default_factory=Interpreter)
    packages: dict[str, str] = field(default_factory=dict)  # installed: name -> version
    install: InstallRecord = field(default_factory=InstallRecord)
    node: str = ""
    warnings: bytes | None = None  # the warnings ledger's file (untrusted); None: none ran
    pull_s: float = 0.0  # a Swarm node's preparation of the task (its image pull included)

    @classmethod
    def ended(cls, ending: Ending, *, node: str = "") -> Execution:
        """A container that was not collected (cancelled, or its deadline passed)."""
        return cls(exit_code=ending.exit_code, timed_out=ending.timed_out,
                   cancelled=ending.cancelled, run_s=ending.run_s, node=node)


def _null_log(_name: str) -> CellLog:
    return CellLog(Path(os.devnull))


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Per-run facts every engine call needs."""

    run_id: str
    labels: dict[str, str]
    cancel: threading.Event
    # Opens a run-level log by file name (the project image's build log).
    open_log: Callable[[str], CellLog] = _null_log


class Engine(Protocol):
    """A place where jobs run, phase by phase (see the module docstring)."""

    name: str

    def info(self) -> EngineInfo:
        """OS, architecture and version (contacts the engine)."""
        ...

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        """Resolve the base image and build the job's image (``spec`` None: mount mode)."""
        ...

    def start(self, job: Job, image: PreparedImage, log: CellLog,
              ctx: RunContext) -> Started:
        """Get the job ready to run; its tests do not begin before :meth:`go`."""
        ...

    def go(self, started: Started) -> None:
        """Begin the tests."""
        ...

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        """Until the tests end, ``timeout`` seconds pass (then kill) or the run is
        cancelled (then kill)."""
        ...

    def collect(self, started: Started, ending: Ending, log: CellLog) -> Execution:
        """Exit code, per-test JUnit and the interpreter's record of an ended job."""
        ...

    def remove(self, started: Started) -> None:
        """Remove the job's container or service, whatever happened (never raises)."""
        ...

    def close(self) -> None:
        ...


class Janitor(Protocol):
    """What runs leave behind on an engine (every object carries the run's labels)."""

    name: str

    def kill_run(self, ctx: RunContext) -> int:
        """Kill and remove everything this run created; returns how many objects."""
        ...

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        """Every container (and service) carrying tagmatrix's labels; built images too
        when ``images``."""
        ...

    def remove_leftover(self, item: Leftover) -> None:
        """Remove one leftover (forcefully for containers and services; an image in use
        stays)."""
        ...


class FullEngine(Engine, Janitor, Protocol):
    """What the factory returns: an engine that also cleans up after itself."""
