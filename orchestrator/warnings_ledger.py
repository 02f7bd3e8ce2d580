"""The warnings ledger across cells: which warning shows up on which interpreter (pure).

Each cell's container writes a ledger (``orchestrator/container/tagmatrix_warnings.py``);
:func:`parse_cell_warnings` reads one (untrusted: it comes from the container, so
it is size-capped, type-checked and clipped), :func:`build_ledger` merges them.
A warning is one (category, message, file): its line is kept to show where, but
not to recognise it, so a line added above a call does not make its warning "new";
across cells it gets the interpreters it appears on, the first of them ("first
seen on 3.12"), the lines, the tests that hit it and how often. Test ids are
tagmatrix's (``tests.test_x::test_y[1]``, as in the JUnit and everywhere else),
not pytest's node ids (``tests/test_x.py::test_y[1]``), which the plugin records.
Warnings first seen on the newest stable interpreter of the run, or only on
pre-releases, come first: they are what the next Python will break, while older
interpreters have had them for a while.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
MAX_FILE_BYTES = 2 * 1024 * 1024  # the plugin writes at most 1 MiB
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?((?:a|b|rc)\d*)?")
_TAG = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?(?:-?(rc|a\d|b\d)\S*)?")
_LINES = re.compile(r":\d+(?:, \d+)*$")  # a location's line numbers: "m.py:23, 41"


def junit_key(node_id: str) -> str:
    """A pytest node id as the test's key everywhere else in tagmatrix (``classname::name``
    of pytest's JUnit): ``tests/test_x.py::TestC::test_m[a/b]`` ->
    ``tests.test_x.TestC::test_m[a/b]``. pytest's junitxml makes its classname and name
    the same way (``mangle_test_address``); a key already in this form comes back as it is."""
    path, bracket, params = node_id.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return "::".join([".".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


class InvalidLedger(ValueError):
    """A cell's warnings file is too big or not a ledger."""


@dataclass(frozen=True, kw_only=True)
class WarningRecord:
    """One warning as one cell's ledger counted it."""

    category: str
    message: str
    filename: str
    lineno: int
    count: int
    tests: tuple[str, ...] = ()
    test_count: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """How a warning is recognised: category, message and file (not the line)."""
        return self.category, self.message, self.filename

    @property
    def complete(self) -> bool:
        """Whether ``tests`` lists every test that hit it (the plugin lists 20)."""
        return self.test_count <= len(self.tests)

    def to_json(self) -> dict[str, Any]:
        """As the plugin writes it (and as :func:`records_from` reads it back)."""
        return {"category": self.category, "message": self.message,
                "filename": self.filename, "lineno": self.lineno, "count": self.count,
                "tests": list(self.tests), "test_count": self.test_count}


@dataclass(frozen=True, kw_only=True)
class CellWarnings:
    """A cell's ledger with what the cell ran on."""

    cell: str
    python: str  # the cell's python tag: "3.13", "3.15-rc"
    interpreter: str = ""  # what the interpreter reported: "3.15.0a2"
    warnings: tuple[WarningRecord, ...] = ()
    dropped: int = 0  # occurrences the plugin could not keep (its caps)


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_cell_warnings(data: bytes, *, cell: str, python: str,
                        interpreter: str = "") -> CellWarnings:
    """A cell's ledger file, checked; :class:`InvalidLedger` says why it was refused."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidLedger(f"warnings file is {len(data)} bytes, over {MAX_FILE_BYTES}")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidLedger(f"warnings file is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("warnings"), list):
        raise InvalidLedger("warnings file has no 'warnings' list")
    records = records_from(document["warnings"])
    return CellWarnings(cell=cell, python=python, interpreter=interpreter,
                        warnings=records, dropped=_count(document.get("dropped")))


def records_from(items: Any) -> tuple[WarningRecord, ...]:
    """Warnings as the plugin (or results.json) lists them; untrusted: checked, clipped."""
    # the plugin's own caps (imported here: the module sets itself up for a container)
    from .container.tagmatrix_warnings import MAX_LISTED_TESTS, MAX_MESSAGE, MAX_WARNINGS

    if not isinstance(items, list):
        return ()
    records = []
    for item in items[:MAX_WARNINGS]:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            continue
        listed = item.get("tests")
        tests: list[Any] = listed if isinstance(listed, list) else []
        records.append(WarningRecord(
            category=_text(item.get("category"), 200) or "Warning",
            message=_text(item.get("message"), MAX_MESSAGE),
            filename=_text(item.get("filename"), 300) or "?",
            lineno=_count(item.get("lineno")), count=max(_count(item.get("count")), 1),
            tests=tuple(junit_key(_text(t, 500)) for t in tests[:MAX_LISTED_TESTS]
                        if isinstance(t, str)),
            test_count=_count(item.get("test_count"))))
    return tuple(records)


def read_cell(data: bytes | None, cell: str) -> tuple[tuple[WarningRecord, ...] | None, int]:
    """A cell's ledger file as the engine brought it: (warnings, occurrences dropped);
    (None, 0) when there is none or it is refused (logged: the cell's result stands)."""
    if data is None:
        return None, 0
    try:
        found = parse_cell_warnings(data, cell=cell, python="")
    except InvalidLedger as exc:
        log.warning("cell %s: warnings ledger ignored: %s", cell, exc)
        return None, 0
    return found.warnings, found.dropped


@dataclass(frozen=True, order=True)
class Minor:
    """An interpreter's minor version, and whether the cell ran a pre-release of it."""

    major: int
    minor: int
    pre: bool = False

    @classmethod
    def of(cls, cell: CellWarnings) -> Minor | None:
        match = _VERSION.fullmatch(cell.interpreter.strip())
        if match:
            return cls(int(match[1]), int(match[2]), bool(match[3]))
        match = _TAG.match(cell.python.strip())
        if match:
            return cls(int(match[1]), int(match[2]), bool(match[3]))
        return None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (" (pre-release)" if self.pre else "")


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One warning across the run's cells."""

    category: str
    message: str
    location: str  # filename:lineno, or filename:23, 41 when it came from several lines
    pythons: tuple[str, ...]  # minor versions it appears on, oldest first
    cells: tuple[str, ...]
    tests: tuple[str, ...]  # some of the tests that hit it
    count: int  # times it was raised, over all cells
    new: bool  # first seen on the newest stable interpreter, or only on pre-releases
    test_count: int = 0  # distinct tests that hit it (in the cell where most did)

    @property
    def first_seen(self) -> str:
        return self.pythons[0] if self.pythons else "?"

    def describe(self, width: int = 100) -> str:
        """``first seen on 3.12: DeprecationWarning: datetime.datetime.utcnow() is
        deprecated… (src/pkg/clock.py:14, 7 tests)``."""
        message = self.message.split("\n", 1)[0]
        if len(message) > width or "\n" in self.message:
            message = message[:width].rstrip() + "\N{HORIZONTAL ELLIPSIS}"
        tests = self.test_count or len(self.tests)
        return f"first seen on {self.first_seen}: {self.category}: {message} " \
               f"({self.location}, {tests} test{'s' if tests != 1 else ''})"

    @property
    def key(self) -> str:
        """How a warning is named in results.json's ``new_warnings`` (with its lines)."""
        return f"{self.category}: {self.message} ({self.location})"

    @property
    def identity(self) -> tuple[str, str, str]:
        """How it is recognised in another run: as :attr:`WarningRecord.key`."""
        return self.category, self.message, _LINES.sub("", self.location)

    @property
    def complete(self) -> bool:
        """Whether ``tests`` lists every test that hit it."""
        return self.test_count <= len(self.tests)

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "message": self.message,
                "location": self.location, "pythons": list(self.pythons),
                "first_seen": self.first_seen, "cells": list(self.cells),
                "tests": list(self.tests), "test_count": self.test_count, "count": self.count,
                "new": self.new}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        return cls(category=str(data["category"]), message=str(data["message"]),
                   location=str(data["location"]),
                   pythons=tuple(str(p) for p in data["pythons"]),
                   cells=tuple(str(c) for c in data["cells"]),
                   tests=tuple(str(t) for t in data.get("tests", ())),
                   count=int(data["count"]), new=bool(data.get("new")),
                   test_count=int(data.get("test_count", 0)))


def build_ledger(cells: Sequence[CellWarnings]) -> list[LedgerEntry]:
    """Every warning of every cell that produced a ledger, the new ones first, then the
    most recently first seen, then the most frequent."""
    minors = {c.cell: Minor.of(c) for c in cells}
    stable = [m for m in minors.values() if m is not None and not m.pre]
    newest = max(stable) if stable else None
    older_ran = any(m is not None and (newest is None or (m.major, m.minor) <
                                       (newest.major, newest.minor)) for m in minors.values())
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for cell in cells:
        for record in cell.warnings:
            entry = merged.setdefault(record.key, {"cells": [], "minors": set(), "tests": [],
                                                   "count": 0, "labels": set(), "most": 0,
                                                   "lines": set()})
            entry["lines"].add(record.lineno)
            entry["cells"].append(cell.cell)
            entry["count"] += record.count
            entry["most"] = max(entry["most"], record.test_count, len(record.tests))
            minor = minors[cell.cell]
            if minor is not None:
                entry["minors"].add(minor)
            else:
                entry["labels"].add(cell.python or "?")
            entry["tests"] += [t for t in record.tests if t not in entry["tests"]]
    out = []
    for (category, message, filename), entry in merged.items():
        location = f"{filename}:{', '.join(str(n) for n in sorted(entry['lines']))}"
        found: list[Minor] = sorted(entry["minors"])
        first = found[0] if found else None
        new = bool(found) and older_ran and (
            all(m.pre for m in found) or (newest is not None and first is not None
                                          and (first.major, first.minor) >=
                                          (newest.major, newest.minor)))
        names = list(dict.fromkeys(str(m) for m in found)) + sorted(entry["labels"])
        out.append((first, LedgerEntry(
            category=category, message=message, location=location, pythons=tuple(names),
            cells=tuple(sorted(set(entry["cells"]))), tests=tuple(entry["tests"][:20]),
            count=entry["count"], new=new,
            test_count=max(entry["most"], len(entry["tests"])))))
    out.sort(key=lambda p: (not p[1].new, -(p[0].major if p[0] else 0),
                            -(p[0].minor if p[0] else 0), -p[1].count, p[1].category,
                            p[1].message, p[1].location))
    return [entry for _, entry in out]
