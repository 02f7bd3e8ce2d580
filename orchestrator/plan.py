"""Cells -> jobs: everything decided before any container starts.

A :class:`Job` says which base image a cell uses, how its project image is
built (shared between cells that differ only in env or command), what runs in
the container, where per-test JUnit will be, its deadline and whether it gates
the exit code. Pure: reads nothing but the project's file list.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .config import Config
from .dockerfile import CELL_TOOLS_DIGEST, PROJECT_TOOLS_DIGEST, builtin_template
from .errors import UsageError
from .jobs import (
    CONTAINER_DIR,
    OWN_FOLDER,
    PLANNED,
    SKIPPED,
    BuildSpec,
    ContextRules,
    InstallStep,
    Job,
    JobState,
    Plan,
    ProjectBuild,
)
from .matrix import Cell, Selector
from .names import SEPARATOR
from .project import ProjectError, read_text
from .routing import Target, route
from .settings import EnvVar, InstallSettings, ProjectKind
from .tags import Catalogue, InterpreterCheck, UnknownVersion, parse_variant, parse_version

__all__ = ["PLANNED", "SKIPPED", "BuildSpec", "Job", "Plan", "builtin_template",
           "explicit_junit", "looks_like_pytest", "make_plan"]

# Left out of build contexts before .dockerignore applies (its "!" lines can bring one
# back, as `!.git` for setuptools-scm): version control, virtualenvs, caches.
ALWAYS_EXCLUDED = (".git", ".hg", ".svn", ".tox", ".nox", ".venv",
                   "**/__pycache__", "*.egg-info", "**/*.egg-info", ".pytest_cache",
                   ".mypy_cache", ".ruff_cache", ".hypothesis")


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


def _declared_args(project: Path, dockerfile: str) -> set[str]:
    """ARG names a Dockerfile declares: only those are passed, so undeclared
    matrix axes do not split one shared build into several. Read as every project
    file is (no link, nothing outside the project; the config checked it already)."""
    try:
        text = read_text(project, dockerfile) or ""
    except (OSError, ProjectError):
        return set()
    return set(re.findall(r"(?im)^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", text))


MAX_SLUG = 64  # of the image name's project part; a repository name may have 255 in all


def _slug(text: str) -> str:
    """The project folder's name as a valid image repository component (lower-case
    letters and digits separated by one '.', '_', '__' or dashes), at most MAX_SLUG
    characters: a longer name is cut and keeps a hash of the whole, so two long names
    that share a beginning stay apart."""
    slug = re.sub(r"[^a-z0-9]+", lambda m: m.group() if re.fullmatch(SEPARATOR, m.group())
                  else "-", text.lower()).strip("-._") or "project"
    if len(slug) <= MAX_SLUG:
        return slug
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{slug[:MAX_SLUG - 13].rstrip('-._')}-{digest}"


def context_excludes(project: Path) -> tuple[str, ...]:
    """What a build context leaves out before .dockerignore applies: ALWAYS_EXCLUDED and
    virtualenvs (any folder with a pyvenv.cfg, two levels deep)."""
    found = list(ALWAYS_EXCLUDED)
    try:
        for child in sorted(project.iterdir()):
            if child.is_dir() and not child.is_symlink():
                for folder in (child, *sorted(c for c in child.iterdir()
                                              if c.is_dir() and not c.is_symlink())):
                    if (folder / "pyvenv.cfg").is_file():
                        found.append(folder.relative_to(project).as_posix())
    except OSError:
        pass
    return tuple(dict.fromkeys(found))


def own_output(project: Path, reports: Path | None, history: Path | None,
               matrix: Path | None = None) -> tuple[str, ...]:
    """tagmatrix's own files inside the project besides its OWN_FOLDERs (left out at
    any depth), as project-relative paths: the reports folder, a run history kept
    elsewhere (history.path: the file and SQLite's companions), the matrix file and its
    lock (CI settings: a quarantine entry must not make the project "changed"). Left out
    after .dockerignore: nothing brings them back (a run's output would otherwise change
    the project every run, and tests could read earlier runs)."""
    root = project.resolve()
    found: list[str] = []
    paths: list[Path] = []
    if matrix is not None:
        paths += [matrix.resolve(), matrix.resolve().with_suffix(".lock")]
    if reports is not None:
        paths.append(reports.resolve())
    if history is not None and history.resolve().parent.name != OWN_FOLDER:
        place = history.resolve()
        paths += [place, *(place.with_name(place.name + s) for s in ("-wal", "-shm", "-journal"))]
    found += [p.relative_to(root).as_posix() for p in paths if root in p.parents]
    return tuple(dict.fromkeys(found))


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Project:
    """What a plan reads from the project once, not once per cell."""

    declared_args: frozenset[str]
    slug: str
    context: str
    rules: ContextRules

    @classmethod
    def of(cls, config: Config, reports: Path | None) -> _Project:
        dockerfile = config.build.dockerfile
        declared = _declared_args(config.project, dockerfile) if dockerfile else set()
        rules = ContextRules(
            excludes=context_excludes(config.project),
            own=own_output(config.project, reports, config.history.file(config.file),
                           config.file),
            max_bytes=config.build.max_context)
        return cls(frozenset(declared), _slug(config.project.name), str(config.project),
                   rules)


def install_step(config: Config, cell: Cell) -> InstallStep | None:
    """How a cell installs the project and its test dependencies; None for the plain
    application template (no packaging metadata, no install settings)."""
    if config.build.dockerfile is not None or config.build.mode == "mount":
        return None
    settings: InstallSettings = config.install.merged(cell.overrides.install)
    info = config.project_info
    kind = info.kind(settings.project) if info else (
        ProjectKind.NONE if settings.project is ProjectKind.AUTO else settings.project)
    if kind is ProjectKind.NONE and not settings.wants_dependencies:
        return None
    groups = info.resolve_groups(settings.groups) if info else ()
    return InstallStep(kind=kind, extras=settings.extras, groups=settings.groups,
                       requirements=settings.requirements,
                       packages=(*settings.packages, *groups), resolution=settings.resolution)


def _refused(config: Config, cell: Cell, resolved: str | None) -> str | None:
    """Why the project cannot be installed in this cell (requires-python), when the cell
    installs it: skipped with the reason, not an install error after minutes of work."""
    step = install_step(config, cell)
    if step is None or step.kind is ProjectKind.NONE or config.project_info is None:
        return None
    return config.project_info.refuses(cell.python, resolved)


def build_spec(config: Config, cell: Cell, base_image: str, project: _Project, *,
               builds: dict[tuple[str, ProjectKind], ProjectBuild] | None = None,
               platform: str = "linux") -> BuildSpec:
    """The build of one cell's image (``builds``: the project images, by platform and
    kind, for cells that install the project)."""
    args: dict[str, str] = {}
    template = None
    dockerfile = config.build.dockerfile
    install = install_step(config, cell)
    built = (builds or {}).get((platform, install.kind)) if install else None
    if dockerfile is None and install is None:
        info = config.project_info
        has_requirements = info.has_requirements_txt if info \
            else (config.project / "requirements.txt").is_file()
        template = builtin_template(base_image, has_requirements)
    elif dockerfile is not None:
        declared = project.declared_args
        offered = {"PYTHON_IMAGE": base_image, "PYTHON_TAG": cell.tag,
                   **{f"MATRIX_{k.upper()}": v for k, v in cell.values().items()},
                   **{k.upper(): v for k, v in cell.axes},
                   **dict(config.build.args)}
        args = {k: v for k, v in offered.items() if k in declared}
    key = _key(base_image, project.context, dockerfile, template, sorted(args.items()),
               project.rules, built.key if built else None, install,
               CELL_TOOLS_DIGEST if built else None)
    return BuildSpec(
        key=key,
        base_image=base_image,
        context=config.project,
        dockerfile=dockerfile,
        template=template,
        args=tuple(sorted(args.items())),
        tag=f"tagmatrix/{project.slug}:{cell.tag}-{key}",
        timeout=config.build.timeout,
        context_rules=project.rules,
        project=built,
        install=install if built else None,
        limits=config.limits,
    )


def _age(catalogue: Catalogue, job: Job) -> tuple[bool, int, int, str]:
    """Sort key: stable before pre-release, then newer minor and patch."""
    version = parse_version(job.cell.python)
    minor = version.minor if version.minor is not None else catalogue.latest_stable().minor
    stable = not (version.rc_family or version.prerelease)
    return (stable, minor, version.patch or 0, job.id)


def project_builds(config: Config, catalogue: Catalogue, jobs: Sequence[Job],
                   project: _Project) -> dict[tuple[str, ProjectKind], ProjectBuild]:
    """One project image per platform and kind, built from the newest planned
    interpreter's image (build backends support new interpreters first)."""
    builds: dict[tuple[str, ProjectKind], ProjectBuild] = {}
    for platform in sorted({j.platform for j in jobs}):
        planned = [j for j in jobs if j.platform == platform and j.state is PLANNED]
        installs = [step for j in planned if (step := install_step(config, j.cell))]
        steps = {step.kind: step for step in installs}
        if not planned or not steps:
            continue
        builder = max(planned, key=lambda j: _age(catalogue, j)).base_image
        # each distinct list of requirements files is read once, not once per cell
        listed = {step.requirements for step in installs if step.requirements}
        paths = sorted({p for files in listed for p in _required_paths(config, files)})
        for kind in steps:
            key = _key(builder, project.context, kind, paths, project.rules,
                       PROJECT_TOOLS_DIGEST)
            builds[(platform, kind)] = ProjectBuild(
                key=key, base_image=builder, context=config.project, kind=kind,
                requirements=tuple(paths), context_rules=project.rules,
                tag=f"tagmatrix/{project.slug}-project:{kind}-{key}", platform=platform,
                timeout=config.build.timeout, limits=config.limits)
    return builds


def _required_paths(config: Config, files: tuple[str, ...]) -> tuple[str, ...]:
    from .reqfiles import requirement_files

    return requirement_files(config.project, files)


@functools.lru_cache(maxsize=4096)
def _availability(catalogue: Catalogue, python: str,
                  variant: str) -> tuple[bool, str, str | None]:
    try:
        found = catalogue.availability(parse_version(python), parse_variant(variant))
    except UnknownVersion as exc:
        hint = f"; did you mean {exc.suggestion}?" if exc.suggestion else ""
        return False, f"{exc}{hint}", None
    return found.published, found.reason, found.resolved_version


def check_selection(config: Config, only: Sequence[Selector],
                    cells: Collection[str] | None = None) -> None:
    """``--only`` / ``--rerun-failed`` must select at least one cell, and name only keys
    the cells have: a typo must not turn into "OK: 0 cells"."""
    keys = sorted({k for cell in config.cells for k in cell.values()})
    for selector in only:
        for key, _ in selector.pairs:
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                raise UsageError(f"--only {selector.text}: no cell has a key {key!r}",
                                 hint=f"did you mean '{close[0]}'?" if close
                                 else "keys: " + ", ".join(keys))
    chosen = [c for c in config.cells if (not only or any(s.matches(c) for s in only))
              and (cells is None or c.id in cells)]
    if chosen:
        return
    ids = [c.id for c in config.cells]
    shown = ", ".join(ids[:30]) + (f" ... ({len(ids)} in all)" if len(ids) > 30 else "")
    asked = " ".join(f"--only {s.text}" for s in only)
    if cells is not None:
        asked = (asked + " " if asked else "") + "--rerun-failed (" + (
            ", ".join(sorted(cells)[:10]) or "no cell") + ")"
    raise UsageError(f"{asked} selects no cell of {config.file}",
                     hint=f"its cells: {shown}")


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
    reports: Path | None = None,
) -> Plan:
    """Jobs for every selected cell, each routed to an engine; cells that cannot run are
    ``skipped`` with the reason. ``targets``: the engines as they are (default: as
    declared); ``engine``: send every cell there; ``cells``: only these cell ids;
    ``pinned``: tag -> image reference by digest (matrix.lock); ``reports``: the run's
    output folder (left out of build contexts)."""
    targets = declared_targets(config) if targets is None else targets
    project = _Project.of(config, reports)
    check = config.image.check_tags and config.image.official
    pytest_command = functools.lru_cache(maxsize=256)(looks_like_pytest)
    mount = config.build.mode == "mount"
    newest = catalogue.latest_stable().family
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
        state: JobState = PLANNED if published else SKIPPED
        routed = route(cell, platform, targets, mount=mount, forced=engine)
        if published and routed.engine is None:
            state, reason = SKIPPED, routed.reason
        if state is PLANNED and (refused := _refused(config, cell, resolved)):
            state, reason = SKIPPED, refused
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
        env.update((e.name, e) for e in cell.overrides.env)
        for key, value in cell.values().items():
            env.setdefault(f"MATRIX_{key.upper()}", EnvVar(name=f"MATRIX_{key.upper()}",
                                                           value=value))
        jobs.append(Job(
            cell=cell,
            state=state,
            reason=reason,
            platform=platform,
            base_image=base_image,
            build=None,  # below, once the project images are known
            mount=config.project if mount else None,
            setup=config.build.setup if mount else None,
            command=command,
            env=tuple(env.values()),
            junit_path=junit,
            pytest_junit=pytest_junit,
            timeout=cell.overrides.timeout or config.test.timeout,
            gating=not any(s.matches(cell) for s in config.allow_failure),
            limits=config.limits,
            network=config.network,
            engine=routed.engine or "",
            expected_version=resolved,
            interpreter=InterpreterCheck(cell.python, newest),
            context_rules=project.rules,
        ))
    if not mount:
        builds = project_builds(config, catalogue, jobs, project)
        jobs = [replace(job, build=build_spec(config, job.cell, job.base_image, project,
                                              builds=builds, platform=job.platform))
                for job in jobs]
    return Plan(jobs=tuple(jobs), catalogue_source=catalogue.source)
