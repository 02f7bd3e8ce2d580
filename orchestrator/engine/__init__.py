"""The Engine interface: the only place where side effects on Docker happen.

An engine prepares a job's image and executes the job; everything before
(config, expansion, planning) is pure. Implementations: ``docker`` (a local
or remote Docker engine) and ``swarm`` (Docker Swarm replicated jobs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from ..celllog import CellLog
from ..labels import LABEL_RUN
from ..plan import BuildSpec, Job
from ..results import Interpreter


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
    built_by: str = ""  # id of the cell whose log has the build output
    cached: bool = False  # every build step came from the cache


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
    node: str = ""


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Per-run facts every engine call needs."""

    run_id: str
    labels: dict[str, str]
    cancel: threading.Event


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
        """Run the job's container to its end, deadline or cancellation, then remove it."""
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
