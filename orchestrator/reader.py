"""From validated YAML data to settings values, with located errors.

:class:`Reader` turns each section of matrix.yaml (already checked against the
schema) into frozen values and raises a :class:`ConfigError` naming file, line,
column and key for what a schema cannot say: the tag grammar, include/exclude keys,
selectors, requirement strings, and what the install section names in the project.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .ignorefile import read_patterns
from .matrix import (
    OVERRIDE_KEYS,
    PRIMARY_AXES,
    Cell,
    IncludeEntry,
    MatrixSpec,
    Overrides,
    Selector,
)
from .names import axis_problem, value_problem
from .project import (
    ProjectError,
    ProjectInfo,
    check_extra_name,
    mount_problem,
    read_text,
    repository_root,
    unpinned_from,
)
from .reqfiles import requirement_files
from .settings import (
    DEFAULT_ENGINES,
    DEFAULT_MAX_CONTEXT,
    MAX_CELLS,
    MAX_CONTEXT,
    MAX_MEMORY,
    EngineSettings,
    EngineType,
    EnvVar,
    Limits,
    ProjectKind,
    Resolution,
    parse_size,
)
from .source import KeyPath, Mark, Source, format_path
from .tags import Catalogue, TagSyntaxError, UnknownVersion, parse_variant, parse_version

log = logging.getLogger(__name__)

# Standalone words a shell would act on; in a command string they are a mistake.
_SHELL_OPERATORS = frozenset({"&&", "||", "|", ";", ">", ">>", "<", "&", "2>&1", "2>", "|&"})


def split_command(value: str | list[str]) -> tuple[str, ...]:
    """A command from YAML: a string is split like a POSIX shell would."""
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)


def text_of(source: Source, path: KeyPath, value: Any) -> str:
    """A scalar as the user wrote it: ``1.10`` stays "1.10", ``true`` stays "true"."""
    if isinstance(value, str):
        return value
    mark: Mark | None = source.marks.get(path)
    if mark is not None and mark.raw is not None:
        return mark.raw
    return str(value)


class Reader:
    """Builds the Config from validated data, raising located errors."""

    def __init__(self, source: Source, catalogue: Catalogue | None) -> None:
        self.source = source
        self.catalogue = catalogue  # None: do not check versions against a catalogue

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, location=self.source.location(path),
                           key=format_path(path), hint=hint)

    def check_tag_part(self, path: KeyPath, value: str, axis: str) -> None:
        try:
            if axis != "python":
                parse_variant(value)
            elif self.catalogue is not None:
                self.catalogue.check_version(parse_version(value))
            else:
                parse_version(value)
        except (TagSyntaxError, UnknownVersion) as exc:
            hint = f"did you mean '{exc.suggestion}'?" if exc.suggestion else None
            if hint is None and isinstance(exc, UnknownVersion):
                hint = ("`tagmatrix tags` lists the published tags; `tags --refresh` reads "
                        "the registry's; a custom image: image.check_tags: false")
            raise self.error(path, str(exc), hint) from exc

    def command(self, value: str | list[str], path: KeyPath) -> tuple[str, ...]:
        """A command: a string is split like a shell would split it, but not run by one
        (no &&, pipes, redirections or $VARIABLES: those would reach the program as
        arguments); a list is taken as it is."""
        try:
            parts = split_command(value)
        except ValueError as exc:  # shlex: "No closing quotation"
            raise self.error(path, f"cannot split the command: {exc}",
                             "balance the quotes, or write the command as a list") from exc
        if not parts:
            raise self.error(path, "the command is empty")
        if isinstance(value, str):
            shell = next((p for p in parts if p in _SHELL_OPERATORS), None)
            if shell is not None:
                raise self.error(path, f"{shell!r} is shell syntax, and commands are not run "
                                 "by a shell (it would reach the program as an argument)",
                                 f'write it as a list: ["sh", "-c", {json.dumps(value)}]')
        return parts

    def max_context(self, build: Mapping[str, Any]) -> int:
        """build.max_context in bytes (a size like 2g, or bytes)."""
        if "max_context" not in build:
            return DEFAULT_MAX_CONTEXT
        size = parse_size(build["max_context"])
        if not 0 < size <= MAX_CONTEXT:
            raise self.error(("build", "max_context"), f"{size} bytes is not between 1 byte "
                             "and 1 TiB", "use a size like 500m or 4g (default 2g)")
        return size

    def limits(self, section: Mapping[str, Any]) -> Limits:
        default = Limits()
        memory = parse_size(section["memory"]) if "memory" in section else default.memory
        if memory < 6 * 1024**2:  # the engine's own minimum
            raise self.error(("limits", "memory"), f"{memory} bytes is below Docker's "
                             "minimum of 6 MiB", "use a size like 512m or 4g")
        if memory > MAX_MEMORY:
            raise self.error(("limits", "memory"), f"{memory} bytes is more than 1 TiB per "
                             "container", "use a size like 512m or 4g")
        cpus = section.get("cpus")
        return Limits(memory=memory, nano_cpus=int(cpus * 1e9) if cpus else None,
                      pids=int(section.get("pids", default.pids)),
                      cap_add=tuple(section.get("cap_add", ())))

    def env(self, mapping: Mapping[str, Any], path: KeyPath) -> tuple[EnvVar, ...]:
        out = []
        for name, value in mapping.items():
            if isinstance(value, dict):
                if "from_env" in value:
                    host = value["from_env"]
                    if host not in os.environ:
                        raise self.error((*path, name, "from_env"),
                                         f"host environment variable {host!r} is not set",
                                         f"export {host}=... before running tagmatrix")
                    out.append(EnvVar(name=name, value=os.environ[host], secret=True))
                else:
                    out.append(EnvVar(name=name, value=str(value["secret"]), secret=True))
            else:
                out.append(EnvVar(name=name, value=text_of(self.source, (*path, name), value)))
        return tuple(out)

    def matrix(self, section: Mapping[str, Any], max_cells: int = MAX_CELLS) -> MatrixSpec:
        axes: list[tuple[str, tuple[str, ...]]] = []
        for name, values in section.items():
            if name in ("include", "exclude"):
                continue
            if name in OVERRIDE_KEYS:
                raise self.error(("matrix", name), f"'{name}' is reserved for per-cell settings "
                                 "and cannot be an axis", "rename the axis")
            problem = axis_problem(name) if name not in PRIMARY_AXES else None
            if problem:
                raise self.error(("matrix", name), problem, "rename the axis, e.g. deps")
            texts = tuple(text_of(self.source, ("matrix", name, i), v)
                          for i, v in enumerate(values))
            upper = {n.upper(): n for n, _ in axes}
            if name.upper() in upper:
                raise self.error(("matrix", name), f"axes '{upper[name.upper()]}' and '{name}' "
                                 f"differ only in case: both would be MATRIX_{name.upper()}",
                                 "rename one of them")
            for i, text in enumerate(texts):
                if (problem := value_problem(text)) is not None:
                    raise self.error(("matrix", name, i), problem)
            if name in PRIMARY_AXES:
                for i, text in enumerate(texts):
                    self.check_tag_part(("matrix", name, i), text, name)
            if len(set(texts)) != len(texts):
                raise self.error(("matrix", name), "lists the same value twice")
            axes.append((name, texts))
        names = [n for n, _ in axes]
        size = math.prod(len(v) for _, v in axes) + len(section.get("include", []))
        if size > max_cells:
            raise self.error(("matrix",), f"the axes make {size} combinations, more than "
                             f"max_cells ({max_cells})", "narrow the axes, or raise "
                             "max_cells: if you mean it")
        has_include = bool(section.get("include"))
        if "python" not in names and not has_include:
            raise self.error(("matrix",), "no 'python' axis",
                             'add python: ["3.12", "3.13"] (quoted versions)')
        exclude = []
        for i, entry in enumerate(section.get("exclude", [])):
            for key in entry:
                if key not in names:
                    close = difflib.get_close_matches(str(key), names, n=1)
                    raise self.error(("matrix", "exclude", i, key),
                                     f"exclude key '{key}' is not an axis of the matrix",
                                     f"did you mean '{close[0]}'?" if close
                                     else "axes: " + ", ".join(names))
            exclude.append(tuple((k, text_of(self.source, ("matrix", "exclude", i, k), v))
                                 for k, v in entry.items()))
        include = []
        for i, entry in enumerate(section.get("include", [])):
            path: KeyPath = ("matrix", "include", i)
            values = tuple((k, text_of(self.source, (*path, k), v)) for k, v in entry.items()
                           if k not in OVERRIDE_KEYS)
            for k, _ in values:
                same = [n for n in names if n.upper() == k.upper()]
                if k not in names and same:
                    raise self.error((*path, k), f"include key '{k}' differs from the axis "
                                     f"'{same[0]}' only in case: both would be "
                                     f"MATRIX_{k.upper()}", f"write '{same[0]}'")
                near = difflib.get_close_matches(k, names, n=1, cutoff=0.75)
                if k not in names and near:
                    raise self.error((*path, k), f"include key '{k}' is not an axis: it would "
                                     f"add a value '{k}' to the cells it matches",
                                     f"did you mean '{near[0]}'?")
            for k, v in values:
                if (problem := value_problem(v)) is not None:
                    raise self.error((*path, k), problem)
                if k in PRIMARY_AXES:
                    self.check_tag_part((*path, k), v, k)
            overrides = Overrides(
                timeout=float(entry["timeout"]) if "timeout" in entry else None,
                env=self.env(entry.get("env", {}), (*path, "env")),
                command=self.command(entry["command"], (*path, "command"))
                if "command" in entry else None,
                install=self.install(entry.get("install", {}), (*path, "install")),
            )
            include.append(IncludeEntry(values=values, overrides=overrides, index=i))
        return MatrixSpec(axes=tuple(axes), exclude=tuple(exclude), include=tuple(include))

    def install(self, section: Mapping[str, Any], path: KeyPath) -> tuple[tuple[str, Any], ...]:
        """An ``install:`` mapping as validated (key, value) pairs; every requirement
        string is checked with :mod:`packaging` (PEP 508)."""
        from packaging.requirements import InvalidRequirement, Requirement

        out: list[tuple[str, Any]] = []
        for key, value in section.items():
            if key == "project":
                out.append((key, ProjectKind(value)))
            elif key == "resolution":
                out.append((key, Resolution(value)))
            else:
                if key == "extras":
                    for i, extra in enumerate(value):
                        try:
                            check_extra_name(extra)
                        except ProjectError as exc:
                            raise self.error((*path, key, i), str(exc), exc.hint) from exc
                if key == "packages":
                    for i, text in enumerate(value):
                        try:
                            Requirement(text)
                        except InvalidRequirement as exc:
                            raise self.error((*path, key, i), f"not a requirement: {exc}",
                                             'write it as pip would take it, e.g. "pytest>=8"'
                                             ) from exc
                out.append((key, tuple(str(v) for v in value)))
        return tuple(out)

    def check_install(self, pairs: tuple[tuple[str, Any], ...], path: KeyPath,
                      info: ProjectInfo) -> None:
        """What an install section names must exist in the project: its groups, extras
        (when static), requirements files (and what they include), a buildable project."""
        for key, value in pairs:
            here = (*path, key)
            try:
                if key == "groups":
                    info.resolve_groups(value)
                elif key == "extras":
                    info.check_extras(value)
                elif key == "requirements":
                    requirement_files(info.root, value)
                elif key == "project":
                    info.check_buildable(value)
            except ProjectError as exc:
                where = f" ({exc.where})" if exc.where else ""
                raise self.error(here, f"{exc}{where}", exc.hint) from exc

    def project(self, data: Mapping[str, Any], base: Path) -> tuple[Path, ProjectInfo,
                                                                    tuple[tuple[str, Any], ...]]:
        """The project folder, what it declares, and the validated top-level install keys."""
        build = data.get("build", {})
        project = (base / data.get("project", ".")).resolve()
        if not project.is_dir():
            raise self.error(("project",), f"project folder {project} does not exist")
        home = repository_root(base)
        if not project.is_relative_to(home):
            raise self.error(("project",), f"project folder {project} is outside {home}, "
                             "the matrix file's folder (or its git repository)",
                             "keep matrix.yaml in the repository it tests: a matrix file "
                             "from a pull request must not bring host folders into a build")
        if build.get("dockerfile"):
            _check_dockerfile(self, project, build["dockerfile"])
        try:
            info = ProjectInfo.read(project)
            read_patterns(project)  # .dockerignore: no link out, capped size and count
        except ProjectError as exc:
            raise self.error(("project",), str(exc), exc.hint) from exc
        pairs = self.install(data.get("install", {}), ("install",))
        self.check_install(pairs, ("install",), info)
        includes = data["matrix"].get("include", [])
        for i, entry in enumerate(includes):
            if "install" in entry:
                at: KeyPath = ("matrix", "include", i, "install")
                self.check_install(self.install(entry["install"], at), at, info)
        if build.get("dockerfile") or build.get("mode") == "mount":
            where = ("install",) if "install" in data else next(
                (("matrix", "include", i, "install") for i, e in enumerate(includes)
                 if "install" in e), None)
            if where is not None:
                raise self.error(where, "install: applies to the built-in template "
                                 "(build.mode image without build.dockerfile)",
                                 "install the project in your Dockerfile, or in mount mode "
                                 "with build.setup")
        problem = mount_problem(project) if build.get("mode") == "mount" else None
        if problem:
            raise self.error(("project",), f"refusing to bind-mount it into test containers: "
                             f"{problem}", "point project at your checkout; remove sockets "
                             "from it (or use build.mode: image)")
        return project, info, pairs

    def check_selectors(self, entries: list[Any], path: KeyPath,
                        cells: tuple[Cell, ...]) -> None:
        """A selector key no cell has never matches: a typo, refused with a suggestion.
        An id glob that matches no cell is warned about (a profile may narrow the matrix)."""
        keys = sorted({k for cell in cells for k in cell.values()})
        for i, (entry, selector) in enumerate(zip(entries, self.selectors(entries, path),
                                                  strict=True)):
            for key, _ in selector.pairs:
                if key not in keys:
                    close = difflib.get_close_matches(key, keys, n=1)
                    at = (*path, i, key) if isinstance(entry, dict) else (*path, i)
                    raise self.error(at, f"no cell has a key '{key}', so this selector never "
                                     "matches", f"did you mean '{close[0]}'?" if close
                                     else "keys: " + ", ".join(keys))
            if selector.id_glob is not None and not any(selector.matches(c) for c in cells):
                location = self.source.location((*path, i))
                log.warning("%s: %s: %r matches no cell of the matrix", location,
                            format_path((*path, i)), selector.id_glob)

    def selectors(self, entries: list[Any],
                  path: KeyPath = ("allow_failure",)) -> tuple[Selector, ...]:
        out = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict):
                out.append(Selector.from_mapping(
                    {k: text_of(self.source, (*path, i, k), v) for k, v in entry.items()}))
                continue
            try:
                out.append(Selector.parse(entry))
            except ValueError as exc:
                raise self.error((*path, i), f"bad selector: {exc}",
                                 "use key=glob[,key=glob] or a glob on cell ids") from exc
        return tuple(out)

    def engines(self, section: Mapping[str, Any],
                network: str = "bridge") -> tuple[EngineSettings, ...]:
        if not section:
            return DEFAULT_ENGINES
        out = []
        for name, entry in section.items():
            if entry.get("base_url") and entry.get("context"):
                raise self.error(("engines", name, "context"), "give base_url or context, "
                                 "not both")
            if network == "none" and entry["type"] == "swarm":
                # a Swarm task is always attached to a network (docker_gwbridge at least);
                # the "none" network is local to each engine and services cannot use it
                raise self.error(("network",), f"network: none is not available on the Swarm "
                                 f"engine {name!r} (a Swarm task always has a network)",
                                 "run those cells on a Docker engine, or use network: bridge")
            out.append(EngineSettings(
                name=name, type=EngineType(entry["type"]), base_url=entry.get("base_url"),
                context=entry.get("context"), tls=entry.get("tls", False),
                parallel=entry.get("parallel"), registry=entry.get("registry"),
                platform=entry.get("platform"),
                cells=self.selectors(entry.get("cells", []), ("engines", name, "cells"))))
        return tuple(out)


def _check_dockerfile(reader: Reader, project: Path, name: str) -> None:
    """The Dockerfile must be a regular file inside the project (nothing outside the
    project folder enters a build); warn when its FROM ignores the cell's image."""
    try:
        text = read_text(project, name)
    except ProjectError as exc:
        raise reader.error(("build", "dockerfile"), str(exc), exc.hint) from exc
    if text is None:
        raise reader.error(("build", "dockerfile"), f"{project / name} does not exist",
                           "the path is relative to the project folder")
    unpinned = unpinned_from(text)
    if unpinned is not None:
        line, instruction = unpinned
        log.warning("%s:%d: the first FROM (%s) uses neither PYTHON_IMAGE nor PYTHON_TAG: "
                    "every cell would run the same interpreter; declare `ARG PYTHON_IMAGE` "
                    "and write `FROM ${PYTHON_IMAGE}`", project / name, line, instruction)
