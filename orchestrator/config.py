"""matrix.yaml -> a validated, frozen :class:`Config`.

Order of checks: YAML syntax and duplicate keys (yamlsource), the profile
overlay, the YAML float trap, the JSON Schema, then what only we know: the
python tag grammar, include/exclude keys, selectors and the expansion itself.
Every error is a :class:`ConfigError` naming file, line, column and key path.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .history.settings import HistorySettings, read_settings
from .matrix import Cell, ExpansionError, MatrixSpec, Selector, expand
from .names import registry_problem, repository_problem
from .project import ProjectInfo
from .reader import Reader, split_command, text_of
from .schema import schema
from .settings import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_COMMAND,
    DEFAULT_ENGINES,
    DEFAULT_LOG_MAX_BYTES,
    DEFAULT_TEST_TIMEOUT,
    MAX_CELLS,
    BuildSettings,
    EngineSettings,
    ImageSettings,
    InstallSettings,
    Limits,
    Network,
    TestSettings,
)
from .source import KeyPath, Source
from .tags import Catalogue

__all__ = ["Config", "load_config", "split_command"]


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
    network: Network = Network.BRIDGE
    install: InstallSettings = field(default_factory=InstallSettings)
    # What the project folder declares (read, never executed); None: not read (tests)
    project_info: ProjectInfo | None = None
    engines: tuple[EngineSettings, ...] = DEFAULT_ENGINES
    allow_failure: tuple[Selector, ...] = ()
    profile: str | None = None
    profiles: tuple[str, ...] = ()
    # What the tags were checked against (built-in, or refreshed from the registry).
    catalogue: Catalogue = field(default_factory=Catalogue.builtin)
    # history:, quarantine:, slowdown: (the run history and what it is used for)
    history: HistorySettings = field(default_factory=HistorySettings)

    def require_engine(self, name: str) -> None:
        """``--engine NAME`` must name one of the file's engines."""
        names = [e.name for e in self.engines]
        if name not in names:
            raise UsageError(f"--engine {name!r}: no such engine in {self.file} "
                             f"(engines: {', '.join(names)})")


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


def check_image(source: Source, image: ImageSettings) -> None:
    """Image references follow Docker's grammar: a typo fails here, not at pull time."""
    problem = registry_problem(image.registry)
    if problem:
        raise ConfigError(problem, location=source.location(("image", "registry")),
                          key="image.registry", hint="e.g. docker.io or 127.0.0.1:5000")
    found = repository_problem(image.repository)
    if found:
        message, fix = found
        raise ConfigError(message, location=source.location(("image", "repository")),
                          key="image.repository",
                          hint=f"did you mean '{fix}'?" if fix else "e.g. library/python")


def read_image(path: Path) -> ImageSettings:
    """Only a matrix file's image settings (registry, repository), checked by their own
    grammar and nothing else: `tags --builtin` must work even when the file no longer
    validates against the catalogue it is about to drop."""
    from .yamlsource import load

    source = load(path)
    data: dict[str, Any] = source.data if isinstance(source.data, dict) else {}
    found = data.get("image")
    section: dict[str, Any] = found if isinstance(found, dict) else {}
    image = ImageSettings(registry=str(section.get("registry", "docker.io")),
                          repository=str(section.get("repository", "library/python")))
    check_image(source, image)
    return image


def load_config(path: Path | str, *, profile: str | None = None,
                catalogue: Catalogue | None = None) -> Config:
    """Load and validate ``path``, applying ``profile`` when given.

    Python versions are checked against ``catalogue`` (default: the built-in
    one) when the images are the official ones and ``image.check_tags`` is on.
    """
    # the YAML loader and jsonschema load here, not when config is imported: a value
    # module must stay cheap to import (plan, engines and --version need no YAML)
    from .validation import check_finite, check_float_trap, check_schema
    from .yamlsource import load

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
    check_finite(source, data)
    check_schema(source, data, schema())

    image_section = data.get("image", {})
    image = ImageSettings(
        registry=image_section.get("registry", "docker.io"),
        repository=image_section.get("repository", "library/python"),
        pull=image_section.get("pull", "missing"),
        check_tags=image_section.get("check_tags", True),
    )
    check_image(source, image)
    if image.official and image.check_tags:
        if catalogue is None:
            from .catalogue import catalogue_for

            catalogue = catalogue_for(image.registry, image.repository)
    else:
        catalogue = None
    reader = Reader(source, catalogue)
    spec = reader.matrix(data["matrix"], int(data.get("max_cells", MAX_CELLS)))
    try:
        cells = expand(spec)
    except ExpansionError as exc:
        where: KeyPath = ("matrix", exc.section) if exc.index is None else \
            ("matrix", exc.section, exc.index)
        raise reader.error(where, str(exc)) from exc
    reader.check_selectors(data.get("allow_failure", []), ("allow_failure",), tuple(cells))
    for name, entry in (data.get("engines") or {}).items():
        reader.check_selectors(entry.get("cells", []), ("engines", name, "cells"),
                               tuple(cells))
    if not cells:
        raise reader.error(("matrix",), "the matrix expands to no cells",
                           "check exclude: it removes every combination")

    build = data.get("build", {})
    test = data.get("test", {})
    project, info, install_pairs = reader.project(data, file.parent)
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
            args=tuple((k, text_of(source, ("build", "args", k), v))
                       for k, v in build.get("args", {}).items()),
            timeout=float(build.get("timeout", DEFAULT_BUILD_TIMEOUT)),
            setup=reader.command(build["setup"], ("build", "setup")) if "setup" in build else None,
            parallel=int(build.get("parallel", 0)),
            max_context=reader.max_context(build),
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
        network=Network(data.get("network", "bridge")),
        install=InstallSettings().merged(install_pairs),
        project_info=info,
        engines=reader.engines(data.get("engines", {}), data.get("network", "bridge")),
        allow_failure=reader.selectors(data.get("allow_failure", [])),
        profile=profile,
        profiles=tuple(sorted(profiles)) if isinstance(profiles, dict) else (),
        catalogue=catalogue or Catalogue.builtin(),
        history=read_settings(data, file.parent, error=reader.error, selectors=reader.selectors),
    )
