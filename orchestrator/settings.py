"""The settings of a matrix file, as frozen values (read by :mod:`orchestrator.config`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from .envvar import EnvVar
from .matrix import Selector

__all__ = ["EnvVar"]  # re-exported: settings values import it from here

DEFAULT_COMMAND = ("python", "-m", "pytest")
DEFAULT_TEST_TIMEOUT = 600.0
DEFAULT_BUILD_TIMEOUT = 1800.0
DEFAULT_LOG_MAX_BYTES = 256 * 1024 * 1024
MAX_TIMEOUT = 7 * 24 * 3600.0  # a cell or a build may take a week, not forever
MAX_PARALLEL = 256  # cells at once on one engine (more is a typo, or a fork bomb)
MAX_CELLS = 10_000  # a matrix larger than this needs max_cells: to say so
MAX_MEMORY = 1024**4  # 1 TiB per container
# The most file content a build context may hold (build.max_context). Each build sends
# the context to the engine, which keeps it in the project image and in every cell's
# image: a checkout of a few GiB (or a sparse file that claims it) multiplies into
# tens of GiB of disk. 2 GiB holds any test suite with its fixtures.
DEFAULT_MAX_CONTEXT = 2 * 1024**3
MAX_CONTEXT = 1024**4


# Capabilities of Docker's default set that tests do not need: raw sockets (spoofing on
# the bridge), device nodes, audit writes, file capabilities, chroot.
DROPPED_CAPABILITIES = ("AUDIT_WRITE", "MKNOD", "NET_RAW", "SETFCAP", "SYS_CHROOT")
# What limits.cap_add may give back: the dropped ones, and a few a test suite may need
# (a debugger's ptrace, its own network namespace, locked memory, priorities). Never
# SYS_ADMIN or the like: a test container is never privileged.
ADDABLE_CAPABILITIES = (*DROPPED_CAPABILITIES, "IPC_LOCK", "NET_ADMIN", "SYS_NICE",
                        "SYS_PTRACE")


class Network(enum.StrEnum):
    """The test containers' network (``network:``)."""

    BRIDGE = "bridge"  # the engine's default bridge: the package index, other hosts
    NONE = "none"  # loopback only: tests reach nothing, not the host's services either


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits and privileges of each test container."""

    memory: int = 4 * 1024**3  # bytes; swap is not allowed on top
    nano_cpus: int | None = None
    pids: int = 4096
    cap_add: tuple[str, ...] = ()  # given back from DROPPED_CAPABILITIES (or ADDABLE)

    @property
    def cap_drop(self) -> tuple[str, ...]:
        return tuple(c for c in DROPPED_CAPABILITIES if c not in self.cap_add)


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: int | str) -> int:
    """``512m`` -> bytes; plain integers are bytes."""
    if isinstance(value, int):
        return value
    text = value.strip().lower().rstrip("b")
    unit = text[-1] if text and text[-1] in "kmg" else ""
    number = text[: -1] if unit else text
    return int(float(number) * _UNITS[unit])


class EngineType(enum.StrEnum):
    """What kind of engine an ``engines:`` entry is."""

    DOCKER = "docker"  # one Docker engine, local or remote
    SWARM = "swarm"  # a Docker Swarm, through a manager


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """One entry of ``engines:``."""

    name: str
    type: EngineType = EngineType.DOCKER
    base_url: str | None = None
    context: str | None = None
    tls: bool | dict[str, Any] = False
    parallel: int | None = None  # None: the top-level parallel
    registry: str | None = None  # swarm: where images are pushed
    platform: str | None = None  # declared; `run` asks the engine
    cells: tuple[Selector, ...] = ()  # pinned cells


DEFAULT_ENGINES = (EngineSettings(name="local"),)


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    registry: str = "docker.io"
    repository: str = "library/python"
    pull: str = "missing"
    check_tags: bool = True

    def reference(self, tag: str) -> str:
        """Full image reference: ``127.0.0.1:5000/library/python:3.12-slim``."""
        return f"{self.registry}/{self.repository}:{tag}"

    @property
    def official(self) -> bool:
        return self.repository in ("library/python", "python")


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    mode: str = "image"
    dockerfile: str | None = None  # relative to the project
    args: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_BUILD_TIMEOUT
    setup: tuple[str, ...] | None = None  # mount mode: runs before the tests
    parallel: int = 0  # images built at once; 0: as many as cells run at once
    max_context: int = DEFAULT_MAX_CONTEXT  # bytes of file content in a build context


@dataclass(frozen=True, kw_only=True)
class TestSettings:
    command: tuple[str, ...] = DEFAULT_COMMAND
    junit: str | None = None
    timeout: float = DEFAULT_TEST_TIMEOUT
    env: tuple[EnvVar, ...] = ()


class ProjectKind(enum.StrEnum):
    """How the project itself gets into a cell (``install.project``)."""

    AUTO = "auto"  # a Python project (pyproject.toml or setup.py): sdist; else application
    SDIST = "sdist"  # built once into an sdist (PEP 517), installed in every cell
    WHEEL = "wheel"  # built once into a wheel, installed in every cell
    EDITABLE = "editable"  # pip install -e . in every cell
    NONE = "none"  # not installed: the application template



class Resolution(enum.StrEnum):
    """Which versions the dependency install picks (``install.resolution``)."""

    HIGHEST = "highest"  # pip, newest versions allowed
    LOWEST_DIRECT = "lowest-direct"  # uv: the lowest versions the project declares



@dataclass(frozen=True, kw_only=True)
class InstallSettings:
    """The ``install:`` section: the project and its test dependencies, per cell."""

    project: ProjectKind = ProjectKind.AUTO
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()  # -r files, relative to the project
    packages: tuple[str, ...] = ()  # extra requirement strings
    resolution: Resolution = Resolution.HIGHEST

    @property
    def wants_dependencies(self) -> bool:
        """Whether anything besides the project itself is to be installed."""
        return bool(self.extras or self.groups or self.requirements or self.packages)

    def merged(self, override: tuple[tuple[str, Any], ...]) -> InstallSettings:
        """These settings with an include entry's ``install:`` keys replacing theirs."""
        return replace(self, **dict(override)) if override else self
