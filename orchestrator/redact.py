"""Secrets out of everything tagmatrix writes: logs as they stream, and every text field
of a cell's result before any report renders it.

What is replaced by ``***``, for each secret value:

- the value itself, and the value as Python's ``repr()`` and JSON escape it
  (backslashes, quotes, tabs, control characters, line breaks): pytest shows
  values in assertion messages through ``repr()``;
- each line of a multi-line value that is at least MIN_PART characters long (a
  test framework's diff shows a value line by line);
- a prefix or suffix of at least MIN_PART characters (of the value or of an escaped
  form) that meets a truncation mark (``...`` or ``…``, pytest shortens long values in
  assertion messages), that ends a line (a prefix) or begins one, after a diff's
  ``E``, ``+``, ``-`` or ``?`` (a suffix: pytest's "Skipping N identical leading
  characters in diff", and the head and tail around a "[truncated N characters]"
  line), or that is at least half of the value wherever it is.

Not caught, and documented: other encodings of a value (base64, URL or percent
encoding, hex), a value split by other characters, and parts shorter than MIN_PART
characters. Cuts are found without a regular expression of every prefix (a 4 KiB
private key would make one of 8,000 alternatives, tens of seconds to compile and
quadratic to run): each place where a secret's first (or last) MIN_PART characters
occur is extended as far as the text agrees with the secret, and masked when a
truncation mark follows (or precedes) it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, AnyStr, Generic, TypeVar

MIN_PART = 8
MASK = "***"
_CUTS = ("...", "\u2026")
_DIFF = " \tE+-?>"  # before a line's content in pytest's output: "E   + ", "> "
T = TypeVar("T")


def escaped_forms(secret: str) -> set[str]:
    """``secret`` as repr() shows it (with either quote), as ascii() and pytest's test
    ids escape it (``\\xe4``, ``\\u0101``), as the repr of its UTF-8 bytes, and as
    JSON shows it."""
    return {repr(secret)[1:-1], repr(secret + "'\"")[1:-4], ascii(secret)[1:-1],
            secret.encode("unicode_escape").decode("ascii"),
            repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
            json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def _parts(secrets: Iterable[str]) -> tuple[list[str], list[str]]:
    """(whole strings to replace, strings whose cut prefixes/suffixes are replaced)."""
    wholes: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        wholes.add(secret)
        wholes.update(form for form in escaped_forms(secret) if len(form) >= MIN_PART)
        if "\n" in secret or "\r" in secret:
            wholes.update(line for line in re.split(r"\r?\n|\r", secret)
                          if len(line.strip()) >= MIN_PART)
    cut = sorted(w for w in wholes if len(w) > MIN_PART)
    return sorted(wholes, key=len, reverse=True), cut


class _Cuts(Generic[AnyStr]):
    """Masks of the cut prefixes and suffixes of ``secrets`` in str or bytes."""

    def __init__(self, secrets: Sequence[AnyStr], marks: Sequence[AnyStr],
                 newline: AnyStr, diff: AnyStr) -> None:
        self.secrets: Sequence[AnyStr] = secrets
        self.marks: Sequence[AnyStr] = marks
        self.newline: AnyStr = newline
        self.diff: AnyStr = diff  # what may stand before a diff line's content

    def spans(self, text: AnyStr) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for secret in self.secrets:
            found += self._prefix_spans(text, secret)
            found += self._suffix_spans(text, secret)
        return found

    def _prefix_spans(self, text: AnyStr, secret: AnyStr) -> list[tuple[int, int]]:
        head, found, start = secret[:MIN_PART], [], text.find(secret[:MIN_PART])
        while start >= 0:
            length = MIN_PART
            limit = min(len(secret), len(text) - start)
            while length < limit and text[start + length] == secret[length]:
                length += 1
            end = start + length
            rest = text[end:end + 2].lstrip(b" \t" if isinstance(text, bytes) else " \t")
            if length < len(secret) and (
                    2 * length >= len(secret) or not rest or rest.startswith(self.newline)
                    or any(text.startswith(m, end) for m in self.marks)):
                found.append((start, end))
            start = text.find(head, start + 1)
        return found

    def _suffix_spans(self, text: AnyStr, secret: AnyStr) -> list[tuple[int, int]]:
        tail, found = secret[-MIN_PART:], []
        end = text.find(tail)
        while end >= 0:
            stop = end + MIN_PART  # the match ends here; extend it backwards
            length = MIN_PART
            limit = min(len(secret), stop)
            while length < limit and text[stop - length - 1] == secret[-length - 1]:
                length += 1
            begin = stop - length
            line = text[text.rfind(self.newline, 0, begin) + 1:begin]
            if length < len(secret) and (
                    2 * length >= len(secret) or not line.strip(self.diff)
                    or any(text[:begin].endswith(m) for m in self.marks)):
                found.append((begin, stop))
            end = text.find(tail, end + 1)
        return found


def _masked(text: AnyStr, spans: list[tuple[int, int]], mask: AnyStr) -> AnyStr:
    if not spans:
        return text
    out, at = [], 0
    for begin, end in sorted(spans):
        if end <= at:
            continue
        out += [text[at:max(begin, at)], mask]
        at = end
    out.append(text[at:])
    return text[:0].join(out)


class Redactor:
    """Replaces secret values in text, and in a byte stream even across chunks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        wholes, cut = _parts(secrets)
        pattern = "|".join(re.escape(w) for w in wholes) or None
        self._text = re.compile(pattern) if pattern else None
        self._bytes = re.compile(pattern.encode()) if pattern else None
        self._cuts_text = _Cuts(cut, _CUTS, "\n", _DIFF)
        self._cuts_bytes = _Cuts([c.encode() for c in cut], [m.encode() for m in _CUTS], b"\n",
                                 _DIFF.encode())
        longest = max((len(w.encode()) for w in wholes), default=0)
        # what could be the start of a match that the next chunk completes
        self.hold = longest + max(len(m.encode()) for m in _CUTS) if longest else 0
        self.pending = b""

    @property
    def active(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        if self._text is None:
            return value
        # whole values first: a part of one is then never masked on its own, leaving
        # the rest of it (an escaped quote) visible beside the mask
        value = self._text.sub(MASK, value)
        return _masked(value, self._cuts_text.spans(value), MASK)

    def _bytes_sub(self, data: bytes) -> bytes:
        assert self._bytes is not None
        data = self._bytes.sub(MASK.encode(), data)
        return _masked(data, self._cuts_bytes.spans(data), MASK.encode())

    def feed(self, chunk: bytes) -> bytes:
        if self._bytes is None:
            return chunk
        data = self._bytes.sub(MASK.encode(), self.pending + chunk)
        cut = max(len(data) - self.hold, 0)
        spans = self._cuts_bytes.spans(data)
        # a part reaching into the held tail may still grow (or meet a line's end that
        # is not there yet): it is judged with the next chunk
        cut = min([cut, *(b for b, e in spans if b < cut < e)])
        self.pending = data[cut:]
        return _masked(data[:cut], [(b, e) for b, e in spans if e <= cut], MASK.encode())

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self._bytes_sub(data) if self._bytes is not None else data

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
