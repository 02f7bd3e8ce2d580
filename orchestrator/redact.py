"""Secrets out of everything tagmatrix writes: logs as they stream, and every text field
of a cell's result before any report renders it.

What is replaced by ``***``, for each secret value:

- the value itself;
- each line of a multi-line value that is at least MIN_PART characters long (a
  test framework's diff shows a value line by line), and the value with its line
  breaks escaped (``\\n``), as ``repr()`` and JSON show it;
- a prefix or suffix of at least MIN_PART characters that meets a truncation mark
  (``...`` or ``…``): pytest shortens long values in assertion messages.

Not caught, and documented: other encodings of a value (base64, URL or percent
encoding, hex), a value split by other characters, and parts shorter than MIN_PART
characters.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable
from typing import Any, TypeVar

MIN_PART = 8
MASK = "***"
_CUTS = ("...", "\u2026")
T = TypeVar("T")


def _parts(secrets: Iterable[str]) -> tuple[list[str], list[str]]:
    """(whole strings to replace, secrets whose cut prefixes/suffixes are replaced)."""
    wholes: set[str] = set()
    cut: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        wholes.add(secret)
        if "\n" in secret or "\r" in secret:
            wholes.add(secret.replace("\r", "\\r").replace("\n", "\\n"))
            wholes.update(line for line in re.split(r"\r?\n|\r", secret)
                          if len(line.strip()) >= MIN_PART)
        if len(secret) > MIN_PART:
            cut.append(secret)
    return sorted(wholes, key=len, reverse=True), cut


def _pattern(wholes: list[str], cut: list[str]) -> str | None:
    alternatives = [re.escape(w) for w in wholes]
    for secret in cut:
        prefixes = [re.escape(secret[:n]) for n in range(len(secret) - 1, MIN_PART - 1, -1)]
        suffixes = [re.escape(secret[-n:]) for n in range(len(secret) - 1, MIN_PART - 1, -1)]
        marks = "|".join(re.escape(m) for m in _CUTS)
        alternatives.append(f"(?:{'|'.join(prefixes)})(?={marks})")
        alternatives.append("(?:" + "|".join(f"(?<={re.escape(m)})" for m in _CUTS)
                            + f")(?:{'|'.join(suffixes)})")
    return "|".join(alternatives) if alternatives else None


class Redactor:
    """Replaces secret values in text, and in a byte stream even across chunks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        wholes, cut = _parts(secrets)
        pattern = _pattern(wholes, cut)
        self._text = re.compile(pattern) if pattern else None
        self._bytes = re.compile(pattern.encode()) if pattern else None
        longest = max((len(w.encode()) for w in [*wholes, *cut]), default=0)
        # what could be the start of a match that the next chunk completes
        self.hold = longest + max(len(m.encode()) for m in _CUTS) if longest else 0
        self.pending = b""

    @property
    def active(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        return self._text.sub(MASK, value) if self._text is not None else value

    def feed(self, chunk: bytes) -> bytes:
        if self._bytes is None:
            return chunk
        data = self._bytes.sub(MASK.encode(), self.pending + chunk)
        cut = max(len(data) - self.hold, 0)
        self.pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self._bytes.sub(MASK.encode(), data) if self._bytes is not None else data

    def value(self, value: T) -> T:
        """``value`` with every string in it redacted: dataclasses (frozen ones too),
        tuples, lists, dicts (keys and values), recursively."""
        if self._text is None:
            return value
        return self._walk(value)  # type: ignore[no-any-return]

    def _walk(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):  # a StrEnum is a str: keep the member
            return value
        if isinstance(value, str):
            return self.text(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: self._walk(getattr(value, f.name))
                       for f in dataclasses.fields(value)}
            return dataclasses.replace(value, **changes)
        if isinstance(value, tuple):
            return tuple(self._walk(v) for v in value)
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        return value
