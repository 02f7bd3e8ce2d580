"""Load YAML while keeping where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two
duplicate keys. We compose the node tree ourselves, reject duplicates, and
record a :class:`Mark` (line, column, the raw scalar text) for every key path,
so every later error can point at the line that caused it.

The file is untrusted input (a pull request may change it): only a regular file is
read, at most MAX_BYTES of it; building the data stops past MAX_NODES nodes (an
alias counts each time it is used, so "billion laughs" stops early), MAX_DEPTH levels
(a recursive alias too) or a scalar of MAX_SCALAR characters; keys must be strings
(YAML reads ``on:`` as true and ``1:`` as a number). libyaml's parser is used when
PyYAML has it (the pure-Python scanner takes quadratic time on a huge scalar).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Location
from .files import kernel_path
from .source import KeyPath, Mark, Source, format_path

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_SCALAR = 100_000
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mark(node: yaml.Node) -> Mark:
    if isinstance(node, yaml.ScalarNode):
        # plain (unquoted) style: None from PyYAML's parser, "" from libyaml's
        return Mark(node.start_mark.line + 1, node.start_mark.column + 1,
                    node.value, not node.style)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.ctor = yaml.constructor.SafeConstructor()
        self.marks: dict[KeyPath, Mark] = {}
        self.nodes = 0

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._error(node, path, f"more than {MAX_NODES} values (aliases count each "
                              "time they are used): refusing to expand it")
        if len(path) > MAX_DEPTH:
            raise self._error(node, path, f"nested deeper than {MAX_DEPTH} levels (a "
                              "recursive alias?)")
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_SCALAR:
            raise self._error(node, path, f"a value of {len(node.value)} characters (at most "
                              f"{MAX_SCALAR})")
        self.marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            self.ctor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            result: dict[Any, Any] = {}
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._error(key_node, path, "a key must be a plain scalar")
                key = self.ctor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    kind = "the boolean" if isinstance(key, bool) else (
                        "nothing (null)" if key is None else "the number")
                    shown = "" if key is None else f" {str(key).lower()}"
                    error = self._error(key_node, path, f"the key {key_node.value!r} is read by "
                                        f"YAML as {kind}{shown}, not a name")
                    error.hint = f'quote it: "{key_node.value}"'
                    raise error
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
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        hint = None
        lines = text.splitlines()
        at = lines[mark.line][mark.column:mark.column + 1] \
            if mark and mark.line < len(lines) else ""
        if at == "\t" or "'\\t'" in str(exc):  # "found character that cannot start any token"
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
    """Read and parse ``path``: a regular file of at most MAX_BYTES; a missing,
    unreadable or special file is a ConfigError (never a read that does not end)."""
    if (root := kernel_path(path)) is not None:
        raise ConfigError(f"{path}: a kernel interface under {root}, not a matrix file",
                          hint="pass the path of your matrix.yaml")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file",
                              hint="pass the path of your matrix.yaml")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {info.st_size} bytes, over the {MAX_BYTES}-byte "
                              "limit of a matrix file")
        # O_NONBLOCK: a file swapped for a FIFO after the stat() cannot hang the read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{path}: not a regular file",
                                  hint="pass the path of your matrix.yaml")
            raw = handle.read(MAX_BYTES + 1)
        text = raw[:MAX_BYTES].decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such file",
            hint="create a matrix.yaml (see README) or pass -f PATH",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse(text, str(path))
