"""Cells -> jobs: everything decided before any container starts.

A :class:`Job` says which base image a cell uses, how its project image is
built (shared between cells that differ only in env or command), what runs in
the container, where per-test JUnit will be, its deadline and whether it gates
the exit code. Pure: reads nothing but the project's file list.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .matrix import Cell, Selector
from .routing import Target, route
from .settings import EnvVar, Limits
from .tags import Catalogue, UnknownVersion, parse_variant, parse_version

PLANNED = "planned"
SKIPPED = "skipped"

# Where tagmatrix keeps its own files inside a container.
CONTAINER_DIR = {"linux": "/tmp/tagmatrix", "windows": "C:\\tagmatrix"}  # noqa: S108 - in the container
WORKDIR = {"linux": "/usr/src/app", "windows": "C:\\src\\app"}


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """How to build a project image; cells with equal ``key`` share one build."""

    key: str
    base_image: str
    context: Path
    dockerfile: str | None  # relative to the context; None: the built-in template
    template: str | None  # the built-in template's text
    args: tuple[tuple[str, str], ...]
    tag: str  # name given to the built image
    timeout: float


@dataclass(frozen=True, kw_only=True)
class Job:
    """One cell, ready to run (or skipped, with the reason)."""

    cell: Cell
    state: str
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
    expected_version: str | None = None  # what the catalogue says the tag holds

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def container_dir(self) -> str:
        return CONTAINER_DIR[self.platform]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The jobs of a run, in matrix order."""

    jobs: tuple[Job, ...]
    catalogue_source: str



_PYTEST = re.compile(r"(?:^|[\s/])(?:pytest|py\.test)(?:\s|$)")
_JUNITXML = re.compile(r"^--junit-?xml(?:=(.*))?$")


def looks_like_pytest(command: Sequence[str]) -> bool:
    """Whether the command runs pytest: ``pytest``, ``python -m pytest``, ``sh -c 'pytest'``."""
    return any(_PYTEST.search(part) for part in command)


def explicit_junit(command: Sequence[str]) -> str | None:
    """A ``--junitxml PATH`` the user already passes to pytest."""
    for i, part in enumerate(command):
        match = _JUNITXML.match(part)
        if match:
            if match[1]:
                return match[1]
            if i + 1 < len(command):
                return command[i + 1]
    return None


def builtin_template(base_image: str, has_requirements: bool) -> str:
    """The canonical layer order of the official image's documentation."""
    lines = [f"FROM {base_image}", "WORKDIR /usr/src/app"]
    if has_requirements:
        # requirements first: editing the code does not invalidate this layer
        lines += ["COPY requirements.txt ./", "RUN pip install --no-cache-dir -r requirements.txt"]
    lines += ["COPY . .", ""]
    return "\n".join(lines)


def _declared_args(dockerfile: Path) -> set[str]:
    """ARG names a Dockerfile declares: only those are passed, so undeclared
    matrix axes do not split one shared build into several."""
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return set(re.findall(r"(?im)^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "project"


@dataclass(frozen=True)
class _Project:
    """What a plan reads from the project once, not once per cell."""

    has_requirements: bool
    declared_args: frozenset[str]
    slug: str
    context: str

    @classmethod
    def of(cls, config: Config) -> _Project:
        dockerfile = config.build.dockerfile
        declared = _declared_args(config.project / dockerfile) if dockerfile else set()
        return cls((config.project / "requirements.txt").is_file(), frozenset(declared),
                   _slug(config.project.name), str(config.project))


def build_spec(config: Config, cell: Cell, base_image: str,
               project: _Project | None = None) -> BuildSpec:
    """The build of one cell's project image."""
    project = project or _Project.of(config)
    context = config.project
    args: dict[str, str] = {}
    template = None
    dockerfile = config.build.dockerfile
    if dockerfile is None:
        template = builtin_template(base_image, project.has_requirements)
    else:
        declared = project.declared_args
        offered = {"PYTHON_IMAGE": base_image, "PYTHON_TAG": cell.tag,
                   **{f"MATRIX_{k.upper()}": v for k, v in cell.values().items()},
                   **{k.upper(): v for k, v in cell.axes},
                   **dict(config.build.args)}
        args = {k: v for k, v in offered.items() if k in declared}
    identity = repr((base_image, project.context, dockerfile, template, sorted(args.items())))
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return BuildSpec(
        key=key,
        base_image=base_image,
        context=context,
        dockerfile=dockerfile,
        template=template,
        args=tuple(sorted(args.items())),
        tag=f"tagmatrix/{project.slug}:{cell.tag}-{key}",
        timeout=config.build.timeout,
    )


@functools.lru_cache(maxsize=4096)
def _availability(catalogue: Catalogue, python: str,
                  variant: str) -> tuple[bool, str, str | None]:
    try:
        found = catalogue.availability(parse_version(python), parse_variant(variant))
    except UnknownVersion as exc:
        hint = f"; did you mean {exc.suggestion}?" if exc.suggestion else ""
        return False, f"{exc}{hint}", None
    return found.published, found.reason, found.resolved_version


def declared_targets(config: Config) -> list[Target]:
    """The engines as matrix.yaml declares them (``plan`` does not contact engines:
    an engine's platform is what its ``platform:`` says, else linux)."""
    return [Target(name=e.name, type=e.type, oses=frozenset({e.platform or "linux"}),
                   pins=e.cells) for e in config.engines]


def make_plan(
    config: Config,
    catalogue: Catalogue,
    *,
    only: Sequence[Selector] = (),
    targets: Sequence[Target] | None = None,
    engine: str | None = None,
    cells: Collection[str] | None = None,
    pinned: Mapping[str, str] | None = None,
) -> Plan:
    """Jobs for every selected cell, each routed to an engine; cells that cannot run are
    ``skipped`` with the reason. ``targets``: the engines as they are (default: as
    declared); ``engine``: send every cell there; ``cells``: only these cell ids;
    ``pinned``: tag -> image reference by digest (matrix.lock)."""
    targets = declared_targets(config) if targets is None else targets
    project = _Project.of(config)
    check = config.image.check_tags and config.image.official
    pytest_command = functools.lru_cache(maxsize=256)(looks_like_pytest)
    mount = config.build.mode == "mount"
    jobs = []
    for cell in config.cells:
        if only and not any(s.matches(cell) for s in only):
            continue
        if cells is not None and cell.id not in cells:
            continue
        platform = parse_variant(cell.variant).platform
        base_image = (pinned or {}).get(cell.tag) or config.image.reference(cell.tag)
        published, reason, resolved = (_availability(catalogue, cell.python, cell.variant)
                                       if check else (True, "", None))
        state = PLANNED if published else SKIPPED
        routed = route(cell, platform, targets, mount=mount, forced=engine)
        if published and routed.engine is None:
            state, reason = SKIPPED, routed.reason
        command = cell.overrides.command or config.test.command
        junit = config.test.junit
        pytest_junit = False
        if junit is None and pytest_command(command):
            junit = explicit_junit(command)
            if junit is None:
                junit = f"{CONTAINER_DIR[platform]}/junit.xml" if platform == "linux" \
                    else f"{CONTAINER_DIR[platform]}\\junit.xml"
                pytest_junit = True
        env = {e.name: e for e in config.test.env}
        for name, value in cell.overrides.env:
            env[name] = EnvVar(name=name, value=value)
        for key, value in cell.values().items():
            env.setdefault(f"MATRIX_{key.upper()}", EnvVar(name=f"MATRIX_{key.upper()}",
                                                           value=value))
        jobs.append(Job(
            cell=cell,
            state=state,
            reason=reason,
            platform=platform,
            base_image=base_image,
            build=None if mount else build_spec(config, cell, base_image, project),
            mount=config.project if mount else None,
            setup=config.build.setup if mount else None,
            command=command,
            env=tuple(env.values()),
            junit_path=junit,
            pytest_junit=pytest_junit,
            timeout=cell.overrides.timeout or config.test.timeout,
            gating=not any(s.matches(cell) for s in config.allow_failure),
            limits=config.limits,
            engine=routed.engine or "",
            expected_version=resolved,
        ))
    return Plan(jobs=tuple(jobs), catalogue_source=catalogue.source)
