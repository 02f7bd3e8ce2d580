"""Load YAML while keeping where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two
duplicate keys. We compose the node tree ourselves, reject duplicates, and
record a :class:`Mark` (line, column, the raw scalar text) for every key path,
so every later error can point at the line that caused it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Location
from .source import KeyPath, Mark, Source, format_path


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
