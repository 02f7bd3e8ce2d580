"""The questions a run asks its history, in one place for the caller (``run``, reports).

Each works with ``history=None`` too (no history, or one that could not be opened):
then only what the current run shows by itself is used (reruns inside the run,
differences between its cells).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..results import RunResult
from .flaky import FlakyTest, Observation, TestVerdict, classify, find_flaky, observations_of
from .quarantine import DEFAULT_CLEAN_RUNS, QuarantineEntry, QuarantineReport, apply_quarantine
from .slowdown import Slowdown, Threshold, across_cells, against_history
from .store import History

_LATEST = 2**62  # a seq after every recorded run


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """Flaky tests over the history, and what became of each changed test in this run."""

    flaky: tuple[FlakyTest, ...]
    verdicts: tuple[TestVerdict, ...]


def judge(run: RunResult, history: History | None, *,
          packages: Mapping[str, Mapping[str, str]] | None = None,
          last: int | None = None) -> Judgement:
    """Flaky tests and verdicts (broken, fixed, flaky, still failing) for ``run``, whether
    or not ``run`` was recorded already; ``last``: how many earlier runs to look at."""
    current = observations_of(run, seq=_LATEST, packages=packages)
    earlier: list[Observation] = []
    if history is not None:
        # Every test that ever failed, errored or was rerun (the partial index), plus
        # the earlier results of those failing for the first time now.
        earlier = history.observations(last=last, before=run.run_id)
        known = {o.test for o in earlier}
        first = {o.test for o in current if o.outcome in ("failed", "error")} - known
        if first:
            earlier += history.observations(first, last=last, before=run.run_id)
        earlier = [o for o in earlier if o.run_id != run.run_id]
    flaky = find_flaky([*earlier, *current])
    return Judgement(flaky=tuple(flaky), verdicts=tuple(classify(current, earlier, flaky)))


def slowdowns(run: RunResult, history: History | None, *,
              threshold: Threshold | None = None) -> list[Slowdown]:
    """Tests that got slow in this run: against the other cells, and against the cell's
    own recent history (see :mod:`orchestrator.history.slowdown` for the rule)."""
    threshold = threshold or Threshold()
    found = across_cells(run, threshold)
    if history is not None:
        durations = history.durations([c.id for c in run.cells], runs=threshold.history_runs,
                                      before=run.run_id)
        found += against_history(run, durations, threshold)
    return found


def quarantine(run: RunResult, entries: Sequence[QuarantineEntry], history: History | None, *,
               today: dt.date, packages: Mapping[str, Mapping[str, str]] | None = None,
               clean_runs: int = DEFAULT_CLEAN_RUNS) -> QuarantineReport:
    """:func:`apply_quarantine` with the history's recent results of the quarantined tests."""
    current = observations_of(run, seq=_LATEST, packages=packages)
    earlier: list[Observation] = []
    if history is not None and entries:
        names = {n for n in history.test_names()
                 if any(fnmatch.fnmatchcase(n, e.test) for e in entries)}
        if names:
            earlier = [o for o in history.observations(names, last=clean_runs,
                                                       before=run.run_id)
                       if o.run_id != run.run_id]
    return apply_quarantine(entries, run, today=today, observations=[*earlier, *current],
                            clean_runs=clean_runs)
