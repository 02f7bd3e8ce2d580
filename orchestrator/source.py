"""A parsed matrix file and where each value came from (no YAML library needed here:
the types every later check uses, cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import Location

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
    """``("matrix", "python", 0)`` -> ``matrix.python[0]`` (a very deep path is shortened
    in the middle)."""
    if len(path) > 12:
        return f"{format_path(path[:6])}…{format_path(path[-3:])}"
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
