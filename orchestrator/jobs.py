"""What a run does, as frozen values: jobs, their builds and how they install the project.

:func:`orchestrator.plan.make_plan` computes these from the configuration; engines
and the scheduler only read them. This module imports no YAML, schema, HTTP or
Docker library, so the engine layer can import it cheaply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from .matrix import Cell
from .settings import DEFAULT_MAX_CONTEXT, EnvVar, Limits, Network, ProjectKind, Resolution
from .tags import InterpreterCheck


class JobState(enum.StrEnum):
    """Whether a cell runs."""

    PLANNED = "planned"
    SKIPPED = "skipped"  # the tag is not published, or no engine serves it



PLANNED = JobState.PLANNED
SKIPPED = JobState.SKIPPED

# tagmatrix's own folder (the run history's default place, beside any matrix.yaml):
# never in a build context at any depth, whatever .dockerignore says.
OWN_FOLDER = ".tagmatrix"
# Where tagmatrix keeps its own files inside a container.
CONTAINER_DIR = {"linux": "/tmp/tagmatrix", "windows": "C:\\tagmatrix"}  # noqa: S108 - in the container
WORKDIR = {"linux": "/usr/src/app", "windows": "C:\\src\\app"}
# Mount mode: the checkout, bound read-only here, copied to the workdir by the bootstrap.
MOUNT_DIR = {"linux": "/tagmatrix/project", "windows": "C:\\tagmatrix-project"}
# Where a cell image keeps what the project image prepared for the install (requirements
# files, the metadata-only wheel) and the install's record, and the project's artifact.
INSTALL_DIR = {"linux": "/tmp/tagmatrix-install", "windows": "C:\\tagmatrix-install"}  # noqa: S108
# tagmatrix's installer, from the cell build's own context (never the project image).
TOOLS_DIR = {"linux": "/tmp/tagmatrix-tools", "windows": "C:\\tagmatrix-tools"}  # noqa: S108
DIST_DIR = {"linux": "/tmp/tagmatrix-dist", "windows": "C:\\tagmatrix-dist"}  # noqa: S108


@dataclass(frozen=True, kw_only=True)
class ContextRules:
    """What the project's build context holds (engine/context.py applies these): the
    project minus ``excludes`` (tagmatrix's defaults: version control, virtualenvs,
    caches), then its .dockerignore, whose "!" lines can bring those back, then minus
    ``own`` (tagmatrix's own output in the project: the reports folder, the run
    history), which nothing brings back; at most ``max_bytes`` of file content."""

    excludes: tuple[str, ...] = ()  # .dockerignore patterns
    own: tuple[str, ...] = ()  # project-relative paths, "/"-separated, with all below them
    max_bytes: int = DEFAULT_MAX_CONTEXT


@dataclass(frozen=True, kw_only=True)
class ProjectBuild:
    """The project image, built once per engine and run and shared by every cell: the
    project's files (as the build context holds them), its artifact built in a
    container (sdist or wheel), and what the cells' dependency layers need."""

    key: str
    base_image: str  # the newest planned interpreter of the platform builds it
    context: Path
    kind: ProjectKind  # never AUTO here
    requirements: tuple[str, ...]  # project-relative paths the dependency install needs
    context_rules: ContextRules
    tag: str
    platform: str = "linux"
    timeout: float
    # the cells' memory limit, applied to the build's RUN steps too (they run project code)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, kw_only=True)
class InstallStep:
    """How one cell installs its test dependencies and the project."""

    kind: ProjectKind  # never AUTO here
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # names, for the record
    requirements: tuple[str, ...] = ()  # -r files, project-relative
    packages: tuple[str, ...] = ()  # install.packages, then the groups' requirements
    resolution: Resolution = Resolution.HIGHEST

    @property
    def stub(self) -> bool:
        """Whether the project's own dependencies come from its metadata."""
        return self.kind is not ProjectKind.NONE


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """How to build a cell's image; cells with equal ``key`` share one build."""

    key: str
    base_image: str
    context: Path
    dockerfile: str | None  # relative to the context; None: a built-in template
    template: str | None  # the application template's text
    args: tuple[tuple[str, str], ...]
    tag: str  # name given to the built image
    timeout: float
    context_rules: ContextRules = field(default_factory=ContextRules)
    project: ProjectBuild | None = None  # the install flow: the image it copies from
    install: InstallStep | None = None
    limits: Limits = field(default_factory=Limits)  # as ProjectBuild.limits


@dataclass(frozen=True, kw_only=True)
class Job:
    """One cell, ready to run (or skipped, with the reason)."""

    cell: Cell
    state: JobState
    reason: str = ""
    platform: str = "linux"
    base_image: str
    build: BuildSpec | None
    mount: Path | None = None  # mount mode: the project folder bound at the workdir
    setup: tuple[str, ...] | None = None
    command: tuple[str, ...]
    env: tuple[EnvVar, ...] = ()
    junit_path: str | None  # inside the container; None: the command writes none
    pytest_junit: bool = False  # we asked pytest for JUnit through PYTEST_ADDOPTS
    timeout: float
    gating: bool = True
    engine: str = ""  # where it runs (see routing)
    limits: Limits = field(default_factory=Limits)
    network: Network = Network.BRIDGE
    expected_version: str | None = None  # what the catalogue says the tag holds
    interpreter: InterpreterCheck | None = None  # what the cell must prove it ran
    # what the project's fingerprint reads (mount mode: what the bootstrap's copy skips)
    context_rules: ContextRules = field(default_factory=ContextRules)

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def container_dir(self) -> str:
        return CONTAINER_DIR[self.platform]

    @property
    def install_step(self) -> InstallStep | None:
        """How the plan says the cell's image installs (install flow only)."""
        return self.build.install if self.build is not None else None

    @property
    def install_record(self) -> str | None:
        """Where the image keeps the install's record (install flow only)."""
        if self.build is None or self.build.install is None:
            return None
        sep = "\\" if self.platform == "windows" else "/"
        return f"{INSTALL_DIR[self.platform]}{sep}record.json"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The jobs of a run, in matrix order."""

    jobs: tuple[Job, ...]
    catalogue_source: str
