"""The Engine interface: the only place where side effects on Docker happen.

An engine prepares a job's image and executes the job; everything before
(config, expansion, planning) is pure. Implementations: ``docker`` (a local
or remote Docker engine) and ``swarm`` (Docker Swarm replicated jobs).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..celllog import CellLog
from ..errors import CellError, EngineUnavailable
from ..jobs import BuildSpec, Job
from ..labels import LABEL_RUN
from ..results import InstallRecord, Interpreter


@dataclass(frozen=True)
class Leftover:
    """One object an engine holds that carries tagmatrix's labels."""

    kind: str  # container, service, image
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
    oses: tuple[str, ...] = ()  # every platform it can run (a Swarm may mix); () = (os,)
    node: str = ""  # host name of the engine (a Swarm engine reports per task)
    description: str = ""


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
    project_digest: str = ""  # the build context's content (see context_fingerprint)


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


class Halt:
    """Stops a run from starting containers, with the reason (the engine was lost);
    set by whoever sees the fault first, read by every waiting cell."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Per-run facts every engine call needs."""

    run_id: str
    labels: dict[str, str]
    cancel: threading.Event
    # Containers that may exist at once (the scheduler's `parallel`). An engine holds
    # a slot from creating a container to its exit only: collecting results and
    # removing it happen outside, while the next cell already starts.
    slots: Slots | None = None
    # Set when the run must stop starting containers for another reason than a
    # cancellation (the engine was lost): waiting cells end without running.
    halt: Halt = field(default_factory=Halt)
    # Opens a run-level log by file name (the project image's build log).
    open_log: Callable[[str], CellLog] = field(default=lambda _name: CellLog(Path(os.devnull)))


class Slots:
    """``parallel`` container slots. A freed slot goes to the queued cell with the best
    priority (longest expected first), whichever thread asks first: cells are queued
    as their images become ready, not in the order they should run."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._queue: dict[str, tuple[float, int]] = {}  # cell -> priority (lower first)
        self._cond = threading.Condition()

    def enqueue(self, cell: str, priority: tuple[float, int] = (0.0, 0)) -> None:
        with self._cond:
            self._queue[cell] = priority
            self._cond.notify_all()

    def _first(self) -> str:
        return min(self._queue, key=self._queue.__getitem__)

    def acquire(self, cell: str, timeout: float) -> bool:
        with self._cond:
            self._queue.setdefault(cell, (float("inf"), 0))
            granted = self._cond.wait_for(
                lambda: self._free > 0 and self._first() == cell, timeout)
            if granted:
                del self._queue[cell]
                self._free -= 1
                self._cond.notify_all()
            return granted

    def withdraw(self, cell: str) -> None:
        with self._cond:
            if self._queue.pop(cell, None) is not None:
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()


class Slot:
    """One of the run's container slots: ``with Slot(ctx, cell) as slot:`` around a
    container's life, ``slot.release()`` as soon as it exits (at the latest on leaving).
    Losing the engine inside halts the run before the slot passes on."""

    def __init__(self, ctx: RunContext, cell: str) -> None:
        self.ctx = ctx
        self.cell = cell
        self.held = False

    def __enter__(self) -> Slot:
        slots = self.ctx.slots
        if slots is None:
            return self
        try:
            while not slots.acquire(self.cell, timeout=0.2):
                self._check()
        except CellError:
            slots.withdraw(self.cell)
            raise
        self.held = True
        try:
            self._check()  # stopped while we waited
        except CellError:
            self.release()
            raise
        return self

    def _check(self) -> None:
        if self.ctx.cancel.is_set():
            raise CellError("cancelled before it started", stage="run")
        if self.ctx.halt.is_set():
            raise CellError(f"not run: {self.ctx.halt.reason}", stage="engine")

    def release(self) -> None:
        if self.held and self.ctx.slots is not None:
            self.held = False
            self.ctx.slots.release()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, EngineUnavailable):
            self.ctx.halt.set(exc.message)  # before the slot goes to a waiting cell
        self.release()


class Engine(Protocol):
    """A place where jobs run."""

    name: str

    def info(self) -> EngineInfo:
        """OS, architecture and version (contacts the engine)."""
        ...

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        """Resolve the base image and build the project image (``spec`` None: mount mode)."""
        ...

    def execute(self, job: Job, image: PreparedImage, log: CellLog,
                ctx: RunContext) -> Execution:
        """Run the job's container to its end, deadline or cancellation, then remove it.

        Holds a :class:`Slot` while the container exists and runs."""
        ...

    def kill_run(self, ctx: RunContext) -> int:
        """Kill and remove everything this run created; returns how many objects."""
        ...

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        """Every container (and service) carrying tagmatrix's labels; built images too
        when ``images``."""
        ...

    def remove(self, item: Leftover) -> None:
        """Remove one leftover (forcefully for containers and services)."""
        ...

    def close(self) -> None:
        ...
