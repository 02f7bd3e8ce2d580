"""Quarantine: known-bad tests that run and report but do not gate, until a date (pure).

matrix.yaml::

    quarantine:
      - {test: "tests.test_net::test_timeout*", until: 2026-12-31}
      - {test: "*::test_tz_*", until: 2027-01-15, cells: ["python=3.15*"],
         reason: "https://github.com/org/proj/issues/123"}

``test`` is a glob on the test's key as tagmatrix reports it (``classname::name``);
``cells`` (optional) are selectors as in ``allow_failure``; ``until`` is the last
day the entry holds. An expired entry quarantines nothing and is reported, so a
quarantine cannot outlive its excuse silently.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..matrix import Cell, Selector
from ..source import KeyPath
from .errors import ErrorFactory, unlocated
from .flaky import PASSED, SKIPPED, Observation

if TYPE_CHECKING:  # results is not needed to read settings (start-up)
    from ..results import CellResult, RunResult

DEFAULT_CLEAN_RUNS = 5  # passes in a row before an entry is suggested for removal


@dataclass(frozen=True, kw_only=True)
class QuarantineEntry:
    """One entry of ``quarantine:``."""

    test: str  # glob on test keys
    until: dt.date
    cells: tuple[Selector, ...] = ()  # none: every cell
    reason: str = ""
    index: int = 0  # position in the list, for messages

    def applies_to(self, cell: CellResult) -> bool:
        if not self.cells:
            return True
        values = Cell(id=cell.id, python=cell.python, variant=cell.variant,
                      axes=tuple(cell.axes.items()))
        return any(s.matches(values) for s in self.cells)

    def matches(self, test: str, cell: CellResult) -> bool:
        return fnmatch.fnmatchcase(test, self.test) and self.applies_to(cell)

    def expired(self, today: dt.date) -> bool:
        return today > self.until

    def describe(self) -> str:
        where = f" in {', '.join(s.text for s in self.cells)}" if self.cells else ""
        return f"quarantine[{self.index}] {self.test}{where} until {self.until.isoformat()}"


SelectorReader = Callable[[list[Any], KeyPath], tuple[Selector, ...]]


def _date(value: Any, path: KeyPath, error: ErrorFactory) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise error(path, f"{value!r} is not a date", "write it as 2026-12-31")


def parse_quarantine(data: Any, *, error: ErrorFactory = unlocated,
                     selectors: SelectorReader | None = None) -> tuple[QuarantineEntry, ...]:
    """The ``quarantine:`` list, checked; errors name the entry and key (``error``: how
    they are made, e.g. the config reader's, with file:line:column)."""
    at: KeyPath = ("quarantine",)
    if data is None:
        return ()
    if not isinstance(data, list):
        raise error(at, "must be a list of {test, until, cells?, reason?}", None)
    read_cells = selectors or (lambda entries, path: _selectors(entries, path, error))
    out = []
    for i, entry in enumerate(data):
        where: KeyPath = (*at, i)
        if not isinstance(entry, dict):
            raise error(where, "must be a mapping {test, until, cells?, reason?}", None)
        unknown = sorted(set(entry) - {"test", "until", "cells", "reason"})
        if unknown:
            raise error(where, f"unknown key {unknown[0]!r}", "known: test, until, cells, reason")
        test = entry.get("test")
        if not isinstance(test, str) or not test.strip():
            raise error((*where, "test"), "needs a test glob",
                        'e.g. test: "tests.test_net::test_timeout*"')
        if "until" not in entry:
            raise error((*where, "until"), "needs an end date: a quarantine must not last "
                        "forever", "until: 2026-12-31")
        cells = entry.get("cells", [])
        if not isinstance(cells, list):
            raise error((*where, "cells"), "must be a list of selectors", None)
        out.append(QuarantineEntry(test=test.strip(),
                                   until=_date(entry["until"], (*where, "until"), error),
                                   cells=read_cells(cells, (*where, "cells")),
                                   reason=str(entry.get("reason", "")), index=i))
    return tuple(out)


def _selectors(entries: Sequence[Any], path: KeyPath, error: ErrorFactory
               ) -> tuple[Selector, ...]:
    out = []
    for i, entry in enumerate(entries):
        try:
            if isinstance(entry, dict):
                out.append(Selector.from_mapping({str(k): str(v) for k, v in entry.items()}))
            else:
                out.append(Selector.parse(entry if isinstance(entry, str) else f"{entry!r}"))
        except ValueError as exc:
            raise error((*path, i), f"bad selector: {exc}",
                        "use key=glob[,key=glob] or a glob on cell ids") from exc
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class Held:
    """A failing test that a quarantine entry keeps from gating."""

    test: str
    cell: str
    entry: QuarantineEntry


@dataclass(frozen=True, kw_only=True)
class Removable:
    """An entry whose tests passed every time in their last ``runs`` runs."""

    entry: QuarantineEntry
    tests: tuple[str, ...]
    runs: int

    def describe(self) -> str:
        return f"{self.entry.describe()}: passed in each of the last {self.runs} runs " \
               f"({len(self.tests)} test(s)); consider removing it"


@dataclass(frozen=True, kw_only=True)
class QuarantineReport:
    held: tuple[Held, ...]  # failing, quarantined: reported, not gating
    gating: tuple[tuple[str, str], ...]  # (test, cell) failing and not quarantined
    released_cells: tuple[str, ...]  # failed only through quarantined tests: do not gate
    expired: tuple[QuarantineEntry, ...]  # warn: these quarantine nothing any more
    removable: tuple[Removable, ...]  # suggest removing these


def apply_quarantine(entries: Sequence[QuarantineEntry], run: RunResult, *,
                     today: dt.date, observations: Iterable[Observation] = (),
                     clean_runs: int = DEFAULT_CLEAN_RUNS) -> QuarantineReport:
    """Which failing tests of ``run`` are quarantined, which entries expired, and which
    could go: ``observations`` (the history's, the current run's included) of the tests
    the entries match; an entry is removable when each of its (test, cell) series has
    at least ``clean_runs`` results, the last ``clean_runs`` of them all passes."""
    from ..results import Status

    active = [e for e in entries if not e.expired(today)]
    held, gating, released = [], [], []
    for cell in run.cells:
        failing = cell.failing_tests
        mine = [(t, next((e for e in active if e.matches(t, cell)), None)) for t in failing]
        held += [Held(test=t, cell=cell.id, entry=e) for t, e in mine if e is not None]
        gating += [(t, cell.id) for t, e in mine if e is None]
        if cell.status is Status.FAILED and failing and all(e for _, e in mine):
            released.append(cell.id)
    cells = {c.id: c for c in run.cells}
    series: dict[tuple[int, str, str], list[Observation]] = {}
    for obs in observations:
        where = cells.get(obs.cell)
        if where is None or obs.outcome == SKIPPED:
            continue
        for entry in active:
            if entry.matches(obs.test, where):
                series.setdefault((entry.index, obs.test, obs.cell), []).append(obs)
    removable = []
    for entry in active:
        recent = [sorted(points, key=lambda o: o.seq)[-clean_runs:]
                  for (index, _, _), points in series.items() if index == entry.index]
        if recent and all(len(p) >= clean_runs and all(o.outcome == PASSED for o in p)
                          for p in recent):
            tests = sorted({t for (index, t, _) in series if index == entry.index})
            removable.append(Removable(entry=entry, tests=tuple(tests), runs=clean_runs))
    return QuarantineReport(held=tuple(held), gating=tuple(gating),
                            released_cells=tuple(released),
                            expired=tuple(e for e in entries if e.expired(today)),
                            removable=tuple(removable))
