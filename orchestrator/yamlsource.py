"""Load YAML while keeping where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two
duplicate keys. We compose the node tree ourselves, reject duplicates, and
record a :class:`Mark` (line, column, the raw scalar text) for every key path,
so every later error can point at the line that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Location

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """Position of a value (1-based) and, for scalars, its source text."""

    line: int
    column: int
    raw: str | None = None
    plain: bool = False  # an unquoted scalar: YAML typed it (3.10 became 3.1)


@dataclass(frozen=True)
class Source:
    """A parsed YAML document and the marks of its key paths."""

    file: str
    data: Any
    marks: dict[KeyPath, Mark]

    def location(self, path: KeyPath) -> Location | None:
        """The closest recorded position for ``path`` (walking up to parents)."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is None:
                continue
            if mark.raw is None:  # a mapping or list: its key's line reads better
                mark = self.marks.get((*path[:end], "<key>"), mark)
            return Location(self.file, mark.line, mark.column)
        return None


def format_path(path: KeyPath) -> str:
    """``("matrix", "python", 0)`` -> ``matrix.python[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _mark(node: yaml.Node) -> Mark:
    if isinstance(node, yaml.ScalarNode):
        return Mark(node.start_mark.line + 1, node.start_mark.column + 1,
                    node.value, node.style is None)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.ctor = yaml.constructor.SafeConstructor()
        self.marks: dict[KeyPath, Mark] = {}

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            self.ctor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            result: dict[Any, Any] = {}
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = self.ctor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)):
                    raise self._error(key_node, path, "a key must be a plain scalar")
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"duplicate key {key!r} (first defined on line {seen[key]})",
                        location=Location(self.file, line, key_node.start_mark.column + 1),
                        key=format_path((*path, str(key))),
                        hint="YAML keeps only the last one; remove or merge the duplicate",
                    )
                seen[key] = line
                result[key] = self.build(value_node, (*path, str(key)))
                # The key's own position is more useful than the value's for
                # "unknown key" errors; values keep theirs under the child path.
                key_path: KeyPath = (*path, str(key), "<key>")
                self.marks[key_path] = _mark(key_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.ctor.construct_object(node, deep=True)

    def _error(self, node: yaml.Node, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message,
            location=Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1),
            key=format_path(path),
        )


def parse(text: str, file: str) -> Source:
    """Parse one YAML document; syntax errors become :class:`ConfigError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        hint = None
        if "'\\t'" in str(exc):  # PyYAML: "found character '\t' that cannot start any token"
            hint = "YAML indentation must use spaces, not tabs"
        raise ConfigError(
            f"invalid YAML: {problem}",
            location=Location(file, mark.line + 1, mark.column + 1) if mark else None,
            hint=hint,
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", location=Location(file, 1, 1)) from exc
    if node is None:
        return Source(file, None, {(): Mark(1, 1)})
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem}",
            location=Location(file, mark.line + 1, mark.column + 1) if mark else None,
        ) from exc
    return Source(file, data, builder.marks)


def load(path: Path) -> Source:
    """Read and parse ``path``; a missing or unreadable file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such file",
            hint="create a matrix.yaml (see README) or pass -f PATH",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse(text, str(path))
