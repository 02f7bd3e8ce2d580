"""matrix.yaml -> a validated, frozen :class:`Config`.

Order of checks: YAML syntax and duplicate keys (yamlsource), the profile
overlay, the YAML float trap, the JSON Schema, then what only we know: the
python tag grammar, include/exclude keys, selectors and the expansion itself.
Every error is a :class:`ConfigError` naming file, line, column and key path.
"""

from __future__ import annotations

import copy
import difflib
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .matrix import (
    OVERRIDE_KEYS,
    PRIMARY_AXES,
    Cell,
    ExpansionError,
    IncludeEntry,
    MatrixSpec,
    Overrides,
    Selector,
    expand,
)
from .schema import schema
from .settings import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_COMMAND,
    DEFAULT_ENGINES,
    DEFAULT_LOG_MAX_BYTES,
    DEFAULT_TEST_TIMEOUT,
    BuildSettings,
    EngineSettings,
    EnvVar,
    ImageSettings,
    Limits,
    TestSettings,
    parse_size,
)
from .tags import Catalogue, TagSyntaxError, UnknownVersion, parse_variant, parse_version
from .validation import check_float_trap, check_schema
from .yamlsource import KeyPath, Mark, Source, format_path, load


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything a run needs from matrix.yaml, validated."""

    file: Path
    project: Path
    image: ImageSettings = field(default_factory=ImageSettings)
    matrix: MatrixSpec
    cells: tuple[Cell, ...]
    build: BuildSettings = field(default_factory=BuildSettings)
    test: TestSettings = field(default_factory=TestSettings)
    parallel: int = 2
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    retries: int = 2
    limits: Limits = field(default_factory=Limits)
    engines: tuple[EngineSettings, ...] = DEFAULT_ENGINES
    allow_failure: tuple[Selector, ...] = ()
    profile: str | None = None
    profiles: tuple[str, ...] = ()
    # What the tags were checked against (built-in, or refreshed from the registry).
    catalogue: Catalogue = field(default_factory=Catalogue.builtin)

    def require_engine(self, name: str) -> None:
        """``--engine NAME`` must name one of the file's engines."""
        names = [e.name for e in self.engines]
        if name not in names:
            raise UsageError(f"--engine {name!r}: no such engine in {self.file} "
                             f"(engines: {', '.join(names)})")


def split_command(value: str | list[str]) -> tuple[str, ...]:
    """A command from YAML: a string is split like a POSIX shell would."""
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)


def _overlay(source: Source, name: str) -> Source:
    """Deep-merge ``profiles.<name>`` over the top level: mappings merge, the rest replaces."""
    data = copy.deepcopy(source.data)
    marks = dict(source.marks)
    prefix: KeyPath = ("profiles", name)

    def merge(base: dict[str, Any], over: dict[str, Any], path: KeyPath) -> None:
        for key, value in over.items():
            here = (*path, key)
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value, here)
                continue
            base[key] = copy.deepcopy(value)
            for stale in [p for p in marks if p[:len(here)] == here]:
                del marks[stale]
            for p, m in source.marks.items():
                if p[:len(prefix) + len(here)] == (*prefix, *here):
                    marks[p[len(prefix):]] = m

    merge(data, source.data["profiles"][name], ())
    return Source(source.file, data, marks)


def _text(source: Source, path: KeyPath, value: Any) -> str:
    """A scalar as the user wrote it: ``1.10`` stays "1.10", ``true`` stays "true"."""
    if isinstance(value, str):
        return value
    mark: Mark | None = source.marks.get(path)
    if mark is not None and mark.raw is not None:
        return mark.raw
    return str(value)


def _python_paths(data: Mapping[str, Any]) -> list[KeyPath]:
    """Where python versions appear, for the float-trap check."""
    paths: list[KeyPath] = []
    matrix = data.get("matrix")
    if isinstance(matrix, dict):
        if isinstance(matrix.get("python"), list):
            paths += [("matrix", "python", i) for i in range(len(matrix["python"]))]
        for section in ("include", "exclude"):
            entries = matrix.get(section)
            if isinstance(entries, list):
                paths += [("matrix", section, i, "python") for i, e in enumerate(entries)
                          if isinstance(e, dict) and "python" in e]
    selectors = data.get("allow_failure")
    if isinstance(selectors, list):
        paths += [("allow_failure", i, "python") for i, s in enumerate(selectors)
                  if isinstance(s, dict) and "python" in s]
    return paths


class _Reader:
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
            raise self.error(path, str(exc), hint) from exc

    def command(self, value: str | list[str], path: KeyPath) -> tuple[str, ...]:
        try:
            parts = split_command(value)
        except ValueError as exc:  # shlex: "No closing quotation"
            raise self.error(path, f"cannot split the command: {exc}",
                             "balance the quotes, or write the command as a list") from exc
        if not parts:
            raise self.error(path, "the command is empty")
        return parts

    def limits(self, section: Mapping[str, Any]) -> Limits:
        default = Limits()
        memory = parse_size(section["memory"]) if "memory" in section else default.memory
        if memory < 6 * 1024**2:  # the engine's own minimum
            raise self.error(("limits", "memory"), f"{memory} bytes is below Docker's "
                             "minimum of 6 MiB", "use a size like 512m or 4g")
        cpus = section.get("cpus")
        return Limits(memory=memory, nano_cpus=int(cpus * 1e9) if cpus else None,
                      pids=int(section.get("pids", default.pids)))

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
                out.append(EnvVar(name=name, value=_text(self.source, (*path, name), value)))
        return tuple(out)

    def matrix(self, section: Mapping[str, Any]) -> MatrixSpec:
        axes: list[tuple[str, tuple[str, ...]]] = []
        for name, values in section.items():
            if name in ("include", "exclude"):
                continue
            if name in OVERRIDE_KEYS:
                raise self.error(("matrix", name), f"'{name}' is reserved for per-cell settings "
                                 "and cannot be an axis", "rename the axis")
            texts = tuple(_text(self.source, ("matrix", name, i), v) for i, v in enumerate(values))
            if name in PRIMARY_AXES:
                for i, text in enumerate(texts):
                    self.check_tag_part(("matrix", name, i), text, name)
            if len(set(texts)) != len(texts):
                raise self.error(("matrix", name), "lists the same value twice")
            axes.append((name, texts))
        names = [n for n, _ in axes]
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
            exclude.append(tuple((k, _text(self.source, ("matrix", "exclude", i, k), v))
                                 for k, v in entry.items()))
        include = []
        for i, entry in enumerate(section.get("include", [])):
            path: KeyPath = ("matrix", "include", i)
            values = tuple((k, _text(self.source, (*path, k), v)) for k, v in entry.items()
                           if k not in OVERRIDE_KEYS)
            for k, v in values:
                if k in PRIMARY_AXES:
                    self.check_tag_part((*path, k), v, k)
            overrides = Overrides(
                timeout=float(entry["timeout"]) if "timeout" in entry else None,
                env=tuple((e.name, e.value) for e in self.env(entry.get("env", {}),
                                                                 (*path, "env"))),
                command=self.command(entry["command"], (*path, "command"))
                if "command" in entry else None,
            )
            include.append(IncludeEntry(values=values, overrides=overrides, index=i))
        return MatrixSpec(axes=tuple(axes), exclude=tuple(exclude), include=tuple(include))

    def selectors(self, entries: list[Any],
                  path: KeyPath = ("allow_failure",)) -> tuple[Selector, ...]:
        out = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict):
                out.append(Selector.from_mapping(
                    {k: _text(self.source, (*path, i, k), v) for k, v in entry.items()}))
                continue
            try:
                out.append(Selector.parse(entry))
            except ValueError as exc:
                raise self.error((*path, i), f"bad selector: {exc}",
                                 "use key=glob[,key=glob] or a glob on cell ids") from exc
        return tuple(out)

    def engines(self, section: Mapping[str, Any]) -> tuple[EngineSettings, ...]:
        if not section:
            return DEFAULT_ENGINES
        out = []
        for name, entry in section.items():
            if entry.get("base_url") and entry.get("context"):
                raise self.error(("engines", name, "context"), "give base_url or context, "
                                 "not both")
            out.append(EngineSettings(
                name=name, type=entry["type"], base_url=entry.get("base_url"),
                context=entry.get("context"), tls=entry.get("tls", False),
                parallel=entry.get("parallel"), registry=entry.get("registry"),
                platform=entry.get("platform"),
                cells=self.selectors(entry.get("cells", []), ("engines", name, "cells"))))
        return tuple(out)


def load_config(path: Path | str, *, profile: str | None = None,
                catalogue: Catalogue | None = None) -> Config:
    """Load and validate ``path``, applying ``profile`` when given.

    Python versions are checked against ``catalogue`` (default: the built-in
    one) when the images are the official ones and ``image.check_tags`` is on.
    """
    file = Path(path)
    source = load(file)
    if source.data is None:
        raise ConfigError("the file is empty", location=source.location(()),
                          hint="see README: matrix.yaml walk-through")
    if not isinstance(source.data, dict):
        raise ConfigError("the top level must be a mapping of keys (matrix:, test:, ...)",
                          location=source.location(()))
    profiles = source.data.get("profiles") or {}
    if profile is not None:
        if not isinstance(profiles, dict) or profile not in profiles:
            names = sorted(profiles) if isinstance(profiles, dict) else []
            close = difflib.get_close_matches(profile, names, n=1)
            raise UsageError(
                f"{file}: no profile '{profile}'"
                + (f"; did you mean '{close[0]}'?" if close
                   else f" (profiles: {', '.join(names) or 'none'})"))
        if not isinstance(profiles[profile], dict):
            raise ConfigError("a profile must be a mapping of top-level keys",
                              location=source.location(("profiles", profile)),
                              key=f"profiles.{profile}")
        source = _overlay(source, profile)
    data: dict[str, Any] = source.data
    check_float_trap(source, _python_paths(data))
    check_schema(source, data, schema())

    image_section = data.get("image", {})
    image = ImageSettings(
        registry=image_section.get("registry", "docker.io"),
        repository=image_section.get("repository", "library/python"),
        pull=image_section.get("pull", "missing"),
        check_tags=image_section.get("check_tags", True),
    )
    if image.official and image.check_tags:
        if catalogue is None:
            from .catalogue import catalogue_for

            catalogue = catalogue_for(image.registry, image.repository)
    else:
        catalogue = None
    reader = _Reader(source, catalogue)
    spec = reader.matrix(data["matrix"])
    try:
        cells = expand(spec)
    except ExpansionError as exc:
        where: KeyPath = ("matrix", exc.section) if exc.index is None else \
            ("matrix", exc.section, exc.index)
        raise reader.error(where, str(exc)) from exc
    if not cells:
        raise reader.error(("matrix",), "the matrix expands to no cells",
                           "check exclude: it removes every combination")

    build = data.get("build", {})
    test = data.get("test", {})
    base = file.parent
    project = (base / data.get("project", ".")).resolve()
    if not project.is_dir():
        raise reader.error(("project",), f"project folder {project} does not exist")
    if build.get("dockerfile") and not (project / build["dockerfile"]).is_file():
        raise reader.error(("build", "dockerfile"),
                           f"{project / build['dockerfile']} does not exist",
                           "the path is relative to the project folder")
    if build.get("mode") == "mount" and any(
            sock.exists() and project in sock.parents
            for sock in (Path("/var/run/docker.sock"), Path("/run/docker.sock"),
                         project / "docker.sock")):
        raise reader.error(("project",), "refusing to bind-mount a folder that holds the "
                           "Docker socket into test containers",
                           "point project at your checkout, not at a system folder")
    if build.get("setup") and build.get("mode", "image") != "mount":
        raise reader.error(("build", "setup"), "setup runs only with build.mode: mount",
                           "in image mode, put setup steps in the Dockerfile")
    return Config(
        file=file,
        project=project,
        image=image,
        matrix=spec,
        cells=tuple(cells),
        build=BuildSettings(
            mode=build.get("mode", "image"),
            dockerfile=build.get("dockerfile"),
            args=tuple((k, _text(source, ("build", "args", k), v))
                       for k, v in build.get("args", {}).items()),
            timeout=float(build.get("timeout", DEFAULT_BUILD_TIMEOUT)),
            setup=reader.command(build["setup"], ("build", "setup")) if "setup" in build else None,
            parallel=int(build.get("parallel", 0)),
        ),
        test=TestSettings(
            command=reader.command(test.get("command", list(DEFAULT_COMMAND)), ("test", "command")),
            junit=test.get("junit"),
            timeout=float(test.get("timeout", DEFAULT_TEST_TIMEOUT)),
            env=reader.env(test.get("env", {}), ("test", "env")),
        ),
        parallel=int(data.get("parallel", 2)),
        log_max_bytes=int(data.get("logs", {}).get("max_bytes", DEFAULT_LOG_MAX_BYTES)),
        retries=int(data.get("retries", 2)),
        limits=reader.limits(data.get("limits", {})),
        engines=reader.engines(data.get("engines", {})),
        allow_failure=reader.selectors(data.get("allow_failure", [])),
        profile=profile,
        profiles=tuple(sorted(profiles)) if isinstance(profiles, dict) else (),
        catalogue=catalogue or Catalogue.builtin(),
    )
