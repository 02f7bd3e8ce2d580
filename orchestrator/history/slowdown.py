"""Per-test slowdowns: against the other cells of the run, and against the history (pure).

The rule, exactly. A test's time counts only when the test **passed** (a failing
test may stop early or wait for a timeout: its time says nothing about speed).
``after`` is first divided by ``speed``, how much slower the whole cell ran than
its baseline (below); a test is reported as slower in a cell when both hold:

1. ``after / speed >= ratio * before`` (default 2.0), and
2. ``after / speed - before >= min_seconds`` (default 0.5 s).

Rule 2 is why a 2 ms test that took 6 ms is not news: timer resolution, start-up
and a busy neighbour produce such ratios all the time; only seconds a user would
notice are reported, and only seconds left once the cell's own slowness is taken
out. ``before`` is:

- **across cells**: the lower median of the test's times over the cells of this
  run in which it passed (at least two cells). The lower median is a real cell, so
  the report can name it ("3.13-slim takes 2.4 times as long as 3.12-slim"), and one
  slow or fast cell cannot move it.
- **against history**: the median of the test's times in that cell's last
  ``history_runs`` (default 5) recorded runs in which it passed (of the run's branch
  and profile), and only when there are at least ``min_history`` (default 3) of
  them: one earlier night on a shared runner is as likely to be the outlier as
  tonight, and a median of 5 survives 2 outliers.

``speed`` (:func:`speed`): the median, over the tests that passed in both the cell
and its baseline (the other cell; the cell's history), of the per-test ratio
``after / before``, over the tests whose baseline took at least 10 ms (at least 5 of
them; with fewer, over those of at least 1 ms), and never below 1: a whole cell that
ran slower (a cold first run, a busy neighbour, a slower runner) flags nothing, one
test 3 times slower than the rest of its cell still is (the speed is said
alongside); a cell that ran faster never makes a test "slower". Cells of one run
share the hour but not the moment: with ``parallel`` below the number of cells,
one cell may run next to a build and another alone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..source import KeyPath
from .errors import ErrorFactory, unlocated
from .flaky import PASSED, outcome_text

if TYPE_CHECKING:  # results is not needed to read settings (start-up)
    from ..results import CellResult, RunResult

# A cell's speed is read from its tests of at least 10 ms (below, timer resolution and
# start-up are most of the ratio); a suite of tiny tests (MarkupSafe's) falls back to
# those of at least 1 ms, JUnit's resolution, rather than to no speed at all.
_SPEED_FLOORS = (0.010, 0.001)  # seconds
_SPEED_MIN_TESTS = 5
_TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """``slowdown: {ratio: 2.0, min_seconds: 0.5}`` and the history window."""

    ratio: float = 2.0
    min_seconds: float = 0.5
    history_runs: int = 5
    min_history: int = 3

    @classmethod
    def from_mapping(cls, data: Any, *, error: ErrorFactory = unlocated) -> Threshold:
        """From the config mapping; errors name the key that is wrong (``error``: how they
        are made, e.g. the config reader's, with file:line:column)."""
        at: KeyPath = ("slowdown",)
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise error(at, "must be a mapping", "e.g. {ratio: 2.0, min_seconds: 0.5}")
        defaults = cls()
        values: dict[str, Any] = {}
        for name, low in (("ratio", 1.0), ("min_seconds", 0.0), ("history_runs", 1),
                          ("min_history", 1)):
            value = data.get(name, getattr(defaults, name))
            kind = int if isinstance(getattr(defaults, name), int) else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or value < low:
                raise error((*at, name), f"must be a number of at least {low}, not {value!r}",
                            None)
            values[name] = value
        unknown = sorted(set(data) - set(values))
        if unknown:
            raise error(at, f"unknown key {unknown[0]!r}",
                        "known: ratio, min_seconds, history_runs, min_history")
        if values["min_history"] > values["history_runs"]:
            raise error((*at, "min_history"), "cannot exceed history_runs", None)
        return cls(**values)

    def slower(self, before: float, after: float) -> bool:
        return after >= self.ratio * before and after - before >= self.min_seconds


class Against(enum.StrEnum):
    """What a slowdown is measured against."""

    CELL = "cell"  # another cell of the same run
    HISTORY = "history"  # the same cell's recent runs


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


@dataclass(frozen=True, kw_only=True)
class Slowdown:
    """A test that took markedly longer in ``cell`` than its baseline."""

    test: str
    cell: str
    against: Against
    baseline_cell: str | None  # the cell compared with (Against.CELL)
    before_s: float  # the baseline's time (history: the median)
    after_s: float
    runs: int = 0  # history runs the median is taken over
    drift: float = 1.0  # how much slower the whole cell ran than its baseline (speed())

    @property
    def ratio(self) -> float:
        return self.after_s / self.before_s if self.before_s > 0 else float("inf")

    def describe(self) -> str:
        """``test X: 3.13-slim takes 2.4<times> as long as 3.12-slim (0.8 s → 1.9 s)``."""
        times = f"{_seconds(self.before_s)} → {_seconds(self.after_s)}"
        ratio = f"{self.ratio:.1f}{_TIMES}" if self.before_s > 0 else "far longer"
        drift = f"; the whole cell ran {self.drift:.1f}{_TIMES} slower" \
            if self.drift >= 1.05 else ""
        if self.against is Against.CELL:
            return f"{self.test}: {self.cell} takes {ratio} as long as {self.baseline_cell} " \
                   f"({times}{drift})"
        return f"{self.test}: {self.cell} takes {ratio} as long as in its last {self.runs} " \
               f"runs (median {times}{drift})"

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "cell": self.cell, "against": self.against.value,
                "baseline_cell": self.baseline_cell, "before_s": round(self.before_s, 3),
                "after_s": round(self.after_s, 3),
                "ratio": round(self.ratio, 2) if self.before_s > 0 else None,
                "runs": self.runs, "drift": round(self.drift, 2)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Slowdown:
        return cls(test=str(data["test"]), cell=str(data["cell"]),
                   against=Against(data["against"]), baseline_cell=data.get("baseline_cell"),
                   before_s=float(data["before_s"]), after_s=float(data["after_s"]),
                   runs=int(data.get("runs", 0)), drift=float(data.get("drift", 1.0)))

    def rounded(self) -> Slowdown:
        """As results.json keeps it, so a report rendered again reads the same."""
        return replace(self, before_s=round(self.before_s, 3), after_s=round(self.after_s, 3),
                       drift=round(self.drift, 2))


def _passing_times(cell: CellResult) -> dict[str, float]:
    return {c.key: c.time for c in cell.cases if outcome_text(c.outcome) == PASSED}


def _order(found: list[Slowdown]) -> list[Slowdown]:
    return sorted(found, key=lambda s: (-(s.after_s - s.before_s), s.test, s.cell))


def across_cells(run: RunResult, threshold: Threshold) -> list[Slowdown]:
    """Tests slower in one cell than in the run's median cell, once the cell's overall
    speed against that cell is taken out; the most seconds lost first."""
    import statistics  # here: config imports this module for Threshold, every command pays
    passing = {cell.id: _passing_times(cell) for cell in run.cells}
    times: dict[str, list[tuple[float, str]]] = {}
    for cell_id, tests in passing.items():
        for test, seconds in tests.items():
            times.setdefault(test, []).append((seconds, cell_id))
    speeds: dict[tuple[str, str], float] = {}  # (cell, baseline cell) -> speed()
    found = []
    for test, points in times.items():
        if len(points) < 2:
            continue
        before, baseline_cell = statistics.median_low(sorted(points))
        for after, cell_id in points:
            if not threshold.slower(before, after):  # speed() >= 1 only ever takes away
                continue
            pair = (cell_id, baseline_cell)
            if pair not in speeds:
                base, mine = passing[baseline_cell], passing[cell_id]
                speeds[pair] = speed([(base[t], mine[t]) for t in base.keys() & mine.keys()])
            if threshold.slower(before, after / speeds[pair]):
                found.append(Slowdown(test=test, cell=cell_id, against=Against.CELL,
                                      baseline_cell=baseline_cell, before_s=before,
                                      after_s=after, drift=speeds[pair]))
    return _order(found)


def speed(pairs: Sequence[tuple[float, float]]) -> float:
    """How much slower a cell ran than its baseline overall, from (before, after) times of
    the tests that passed in both (>= 1; see the module)."""
    import statistics

    for floor in _SPEED_FLOORS:
        ratios = [after / before for before, after in pairs if before >= floor]
        if len(ratios) >= _SPEED_MIN_TESTS:
            return max(statistics.median(ratios), 1.0)
    return 1.0


def against_history(run: RunResult, history: Mapping[tuple[str, str], Sequence[float]],
                    threshold: Threshold) -> list[Slowdown]:
    """Tests slower than in their cell's recent runs; ``history``: (test, cell id) ->
    passing times, oldest first (:meth:`History.durations`)."""
    import statistics

    found = []
    for cell in run.cells:
        pairs = []
        for test, after in _passing_times(cell).items():
            earlier = list(history.get((test, cell.id), ()))[-threshold.history_runs:]
            if len(earlier) >= threshold.min_history:
                pairs.append((test, statistics.median(earlier), after, len(earlier)))
        factor = speed([(before, after) for _, before, after, _ in pairs])
        found += [Slowdown(test=test, cell=cell.id, against=Against.HISTORY, baseline_cell=None,
                           before_s=before, after_s=after, runs=runs, drift=factor)
                  for test, before, after, runs in pairs
                  if threshold.slower(before, after / factor)]
    return _order(found)
