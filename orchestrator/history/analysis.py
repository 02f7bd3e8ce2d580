"""The questions a run asks its history, in one place for the caller (``run``, reports).

Each works with ``history=None`` too (no history, or one that could not be opened):
then only what the current run shows by itself is used (reruns inside the run,
differences between its cells). Each takes a :class:`~.records.Scope`: the earlier runs
it looks at are those of the same profile and branch (as ``--baseline auto``'s), so a
failure on a feature branch is never a verdict, a flip or a slowdown on main.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..results import RunResult
from .flaky import (
    FlakyTest,
    Observation,
    TestVerdict,
    classify,
    find_flaky,
    is_incident,
    observations_of,
    outcome_text,
    test_name,
)
from .quarantine import DEFAULT_CLEAN_RUNS, QuarantineEntry, QuarantineReport, apply_quarantine
from .records import Scope
from .slowdown import Slowdown, Threshold, across_cells, against_history
from .store import History

_LATEST = 2**62  # a seq after every recorded run


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """Flaky tests over the history, and what became of each changed test in this run."""

    flaky: tuple[FlakyTest, ...]
    verdicts: tuple[TestVerdict, ...]
    incidents: tuple[str, ...] = ()  # cells of this run that failed as a whole (not judged)
    unexamined: int = 0  # failing tests past the limit, not looked at for flakiness
    known: tuple[FlakyTest, ...] = ()  # flaky before this run: what the history knew


def judge(run: RunResult, history: History | None, *,
          packages: Mapping[str, Mapping[str, str]] | None = None,
          last: int | None = None, limit: int = 200, scope: Scope | None = None) -> Judgement:
    """Flaky tests and verdicts (broken, fixed, flaky, still failing) for ``run``, whether
    or not ``run`` was recorded already. ``last``: how many earlier runs to look at;
    ``limit``: how many of the tests that failed in them to examine (the most often
    failing first), so that the work stays bounded. Cells of ``run`` that failed as a
    whole (:func:`is_incident`) are reported as incidents, not judged test by test."""
    incidents = tuple(c.id for c in run.cells if is_incident(
        sum(1 for t in c.cases if outcome_text(t.outcome) in ("failed", "error")),
        len(c.cases)))
    # Only tests that fail now, were rerun, failed before or ever flipped can have a
    # verdict or a flip: the thousands that passed and pass are never looked at.
    changed = {test_name(t.key) for c in run.cells if c.id not in incidents for t in c.cases
               if t.flaky or outcome_text(t.outcome) in ("failed", "error")}
    earlier: list[Observation] = []
    previous: list[Observation] = []
    unexamined = 0
    if history is not None:
        names, unexamined = history.flaky_candidates(last=last, before=run.run_id,
                                                     limit=limit, scope=scope)
        earlier = [o for o in history.observations(names, last=last, before=run.run_id,
                                                   scope=scope)
                   if o.run_id != run.run_id]
        previous = [o for o in history.previous_observations(
            [c.id for c in run.cells], before=run.run_id, tests=changed, scope=scope)
            if o.run_id != run.run_id]
        changed |= {o.test for o in previous} | set(names)
    current = [o for o in observations_of(run, seq=_LATEST, packages=packages, tests=changed)
               if o.cell not in incidents]
    # each cell's previous result counts too: a test's first flip is its first evidence
    before = list({(o.test, o.cell, o.seq): o for o in [*earlier, *previous]}.values())
    flaky = find_flaky([*before, *current])
    return Judgement(flaky=tuple(flaky),
                     verdicts=tuple(classify(current, before, flaky)),
                     incidents=incidents, unexamined=unexamined,
                     known=tuple(find_flaky(before)))


def slowdowns(run: RunResult, history: History | None, *,
              threshold: Threshold | None = None, scope: Scope | None = None) -> list[Slowdown]:
    """Tests that got slow in this run: against the other cells, and against the cell's
    own recent history (see :mod:`orchestrator.history.slowdown` for the rule)."""
    threshold = threshold or Threshold()
    found = across_cells(run, threshold)
    if history is not None:
        durations = history.durations([c.id for c in run.cells], runs=threshold.history_runs,
                                      before=run.run_id, scope=scope)
        found += against_history(run, durations, threshold)
    return found


def quarantine(run: RunResult, entries: Sequence[QuarantineEntry], history: History | None, *,
               today: dt.date, packages: Mapping[str, Mapping[str, str]] | None = None,
               clean_runs: int = DEFAULT_CLEAN_RUNS,
               scope: Scope | None = None) -> QuarantineReport:
    """:func:`apply_quarantine` with the history's recent results of the quarantined tests."""
    current = observations_of(run, seq=_LATEST, packages=packages)
    earlier: list[Observation] = []
    if history is not None and entries:
        names = {n for n in history.test_names()
                 if any(fnmatch.fnmatchcase(n, e.test) for e in entries)}
        if names:
            earlier = [o for o in history.observations(names, last=clean_runs,
                                                       before=run.run_id, scope=scope)
                       if o.run_id != run.run_id]
    return apply_quarantine(entries, run, today=today, observations=[*earlier, *current],
                            clean_runs=clean_runs)
