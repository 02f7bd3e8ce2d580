"""A run and its history: checked before the run, asked and written after it.

:func:`prepare` (the CLI, before anything runs) finds the history file, refuses an
unusable one (exit 2, the file untouched), reads the checkout's commit and branch
and, for ``--baseline auto``, the run to compare with. :func:`remember` (the end of
``run.execute``, also for a cancelled run) asks the history and the run's own cells
what they say — flaky tests, verdicts, slowdowns, the warnings ledger, quarantine —
puts that on the result, and records the run. A history that cannot be written
never fails the run: the reports say why it was not written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from .config import Config
from .history.analysis import Judgement, judge, quarantine, slowdowns
from .history.errors import HistoryError, HistoryUnwritable
from .history.git import GitInfo, read_git
from .history.records import RunMeta, Scope
from .history.store import History
from .insights import (
    ABSENT,
    STRIP_RUNS,
    Check,
    Exempt,
    Exemption,
    HistoryNote,
    Insights,
    StripPoint,
)
from .results import Gate, RunResult
from .warnings_ledger import CellWarnings, LedgerEntry, build_ledger

log = logging.getLogger(__name__)

FLAKY_WINDOW = 20  # earlier runs a run's flakiness verdicts look at
# Where CI services name the branch of a detached checkout (pull requests, tags).
BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")
_BRANCH = re.compile(r"[\w./@+-]{1,255}")


@dataclass(frozen=True, kw_only=True)
class HistoryPlan:
    """What a run will do with its history (``RunRequest.history``)."""

    path: Path | None  # None: --no-history
    keep: int
    meta: RunMeta  # the matrix file's hash, the commit and branch
    gate: Gate = Gate.FAILURES  # --fail-on failures | regressions
    checks: tuple[Check, ...] = ()  # --fail-on slowdowns, new-warnings
    baseline: str | None = None  # the run --baseline auto found
    problem: str = ""  # found before the run: the history cannot be written


def scope_of(config: Config, meta: RunMeta) -> Scope:
    """The earlier runs this one is compared with (see :class:`Scope`)."""
    return Scope(profile=config.profile, branch=meta.git_branch, matrix_hash=meta.matrix_hash)


def matrix_hash(config: Config) -> str:
    """sha256 of the matrix file's bytes (its profile is recorded apart)."""
    try:
        return "sha256:" + hashlib.sha256(config.file.read_bytes()).hexdigest()
    except OSError:
        return ""


def checkout(folder: Path, environ: dict[str, str] | None = None) -> GitInfo:
    """The commit and branch of the checkout holding ``folder``; a detached HEAD (how CI
    checks out pull requests) takes the branch from the CI service's variables."""
    found = read_git(folder)
    if found.branch:
        return found
    environ = dict(os.environ) if environ is None else environ
    branch = next((environ[v] for v in BRANCH_VARIABLES
                   if _BRANCH.fullmatch(environ.get(v, ""))), None)
    return GitInfo(commit=found.commit, branch=branch)


def prepare(config: Config, *, path: Path | None, gate: Gate = Gate.FAILURES,
            checks: Sequence[Check] = (), auto_baseline: bool = False
            ) -> tuple[HistoryPlan, RunResult | None]:
    """The history's plan for a run, and the ``--baseline auto`` run (None: none found).

    Raises HistoryError (exit 2) for a history that is damaged, foreign or newer, so
    nothing runs against a file that cannot be recorded into; a history that merely
    cannot be written (read-only) is a warning and the run goes on.
    """
    git = checkout(config.file.parent)
    meta = RunMeta(matrix_hash=matrix_hash(config), git_commit=git.commit,
                   git_branch=git.branch)
    plan = HistoryPlan(path=path, keep=config.history.keep, meta=meta, gate=gate,
                       checks=tuple(checks))
    if path is None:
        return plan, None
    problem = ""
    try:
        History.open(path).close()  # creates, migrates and checks it
    except HistoryUnwritable as exc:
        problem = exc.message
        log.warning("history not written: %s", exc.message)
    baseline = None
    if auto_baseline:
        with _reading(path) as history:
            scope = scope_of(config, meta)
            record = history.baseline(branch=scope.branch, matrix_hash=scope.matrix_hash,
                                      profile=scope.profile) if history else None
        if record is None:
            log.warning("--baseline auto: no earlier complete run of %s in %s; nothing to "
                        "compare with", f"branch {git.branch}" if git.branch
                        else "this matrix file", path)
        else:
            baseline = record.to_result()
            log.info("--baseline auto: run %s (recorded %s)", record.run_id, record.recorded_at)
    return replace(plan, problem=problem, baseline=baseline.run_id if baseline else None), \
        baseline


@contextmanager
def _reading(path: Path) -> Iterator[History | None]:
    """The history opened read-only; None when there is none yet. Damage is an error."""
    try:
        history = History.open(path, readonly=True)
    except HistoryError as exc:
        if "no history here yet" in exc.message:
            yield None
            return
        raise
    with history:
        yield history


def remember(run: RunResult, config: Config, plan: HistoryPlan,
             baseline: RunResult | None) -> RunResult:
    """``run`` with its insights and quarantined tests, recorded in the history when it
    can be; never raises for the history (the run's reports must be written)."""
    history, problem = _open(plan)
    note = None
    try:
        run, insights = _insights(run, config, plan, history, baseline)
        if plan.path is not None:
            note = _record(run, plan, history, problem, scope_of(config, plan.meta))
    except Exception:  # a bug here must not cost the run its reports
        log.exception("the run history's analyses failed: the reports are written without "
                      "them")
        return run
    finally:
        if history is not None:
            history.close()
    return replace(run, insights=replace(insights, history=note))


def _open(plan: HistoryPlan) -> tuple[History | None, str]:
    """The history for writing; else for reading (with why it cannot be written)."""
    if plan.path is None:
        return None, ""
    try:
        return History.open(plan.path), ""
    except HistoryUnwritable as exc:
        problem = exc.message
    except HistoryError as exc:  # damaged meanwhile: analyse without it
        log.warning("history not used: %s", exc.message)
        return None, exc.message
    try:
        return History.open(plan.path, readonly=True), problem
    except HistoryError:
        return None, problem


def _insights(run: RunResult, config: Config, plan: HistoryPlan, history: History | None,
              baseline: RunResult | None) -> tuple[RunResult, Insights]:
    threshold = config.history.slowdown
    scope = scope_of(config, plan.meta)
    try:
        judged = judge(run, history, packages=plan.meta.packages, last=FLAKY_WINDOW,
                       scope=scope)
        slow = slowdowns(run, history, threshold=threshold, scope=scope)
        held = quarantine(run, config.history.quarantine, history, today=dt.date.today(),
                          packages=plan.meta.packages, scope=scope)
    except HistoryError as exc:  # the file went bad under us: what the run shows by itself
        log.warning("history not used: %s", exc.message)
        judged = judge(run, None)
        slow = slowdowns(run, None, threshold=threshold)
        held = quarantine(run, config.history.quarantine, None, today=dt.date.today())
    for entry in held.expired:
        log.warning("%s: expired, quarantines nothing: remove it or move the date",
                    entry.describe())
    by_cell: dict[str, list[str]] = {}
    for item in held.held:
        by_cell.setdefault(item.cell, []).append(item.test)
    run = replace(run, cells=tuple(replace(c, quarantined=tuple(by_cell.get(c.id, ())))
                                   for c in run.cells))
    exempt = [Exempt(test=h.test, cell=h.cell, kind=Exemption.QUARANTINE,
                     why=f"quarantined until {h.entry.until.isoformat()}"
                         + (f" ({h.entry.reason})" if h.entry.reason else ""))
              for h in held.held]
    if plan.gate is Gate.REGRESSIONS:
        exempt += _flaky_exemptions(run, judged, {(e.test, e.cell) for e in exempt})
    ledger = build_ledger([CellWarnings(cell=c.id, python=c.python,
                                        interpreter=c.interpreter.version, warnings=c.warnings,
                                        dropped=c.warnings_dropped)
                           for c in run.cells if c.warnings is not None])
    return run, Insights(
        flaky=judged.flaky, verdicts=judged.verdicts, incidents=judged.incidents,
        slowdowns=tuple(s.rounded() for s in slow), ledger=tuple(ledger),
        new_warnings=new_warnings(ledger, baseline), held=tuple(exempt),
        expired=tuple(e.describe() + ": expired, quarantines nothing" for e in held.expired),
        removable=tuple(r.describe() for r in held.removable),
        checks=plan.checks, threshold=threshold)


def _flaky_exemptions(run: RunResult, judged: Judgement,
                      taken: set[tuple[str, str]]) -> list[Exempt]:
    """Failing tests of this run that the history knew as flaky before it."""
    known = {f.test: f for f in judged.known}
    return [Exempt(test=test, cell=cell.id, kind=Exemption.FLAKY, why=known[test].describe())
            for cell in run.cells for test in cell.failing_tests
            if test in known and (test, cell.id) not in taken]


def new_warnings(ledger: Sequence[LedgerEntry], baseline: RunResult | None
                 ) -> tuple[str, ...] | None:
    """Warnings of this run that no cell of ``baseline`` had (by category, message and
    file: a warning whose line moved is the same one), or that a test raises now which
    did not before (when both runs list every test that raised it); None when the
    baseline has no ledger to compare with (none given, or from before the ledger)."""
    if baseline is None:
        return None
    seen = [c.warnings for c in baseline.cells if c.warnings is not None]
    if not seen:
        return None
    known: dict[tuple[str, str, str], tuple[set[str], bool]] = {}
    for warnings in seen:
        for warning in warnings:
            tests, complete = known.get(warning.key, (set(), True))
            known[warning.key] = (tests | set(warning.tests), complete and warning.complete)
    out = []
    for entry in ledger:
        found = known.get(entry.identity)
        if found is None or (found[1] and entry.complete and not set(entry.tests) <= found[0]):
            out.append(entry.key)
    return tuple(out)


def _record(run: RunResult, plan: HistoryPlan, history: History | None,
            problem: str, scope: Scope) -> HistoryNote:
    """Record ``run`` (when the history is writable) and read each cell's recent statuses
    in the runs of ``scope`` (a cell absent from one of them: ``absent``)."""
    path = str(plan.path)
    recorded = None
    if history is not None and not history.readonly:
        try:
            recorded = history.record(run, plan.meta, keep=plan.keep)
        except HistoryError as exc:
            problem = exc.message
    if problem:
        log.warning("history not written: %s", problem)
    strips: dict[str, list[StripPoint]] = {c.id: [] for c in run.cells}
    runs = 0
    compared: list[str] = []
    left_out = 0
    if history is not None:
        with suppress(HistoryError):
            earlier = [r for r in history.runs(last=STRIP_RUNS - 1, scope=scope,
                                               before=run.run_id) if r.run_id != run.run_id]
            runs = history.count()
            compared, left_out = history.scoped(scope, before=run.run_id)
            for record in earlier:
                statuses = {c.id: c.status.value for c in record.cells}
                for cell_id, points in strips.items():
                    points.append(StripPoint(run_id=record.run_id, started_at=record.started_at,
                                             status=statuses.get(cell_id, ABSENT)))
    for cell in run.cells:
        strips[cell.id].append(StripPoint(run_id=run.run_id, started_at=run.started_at,
                                          status=cell.status.value))
    return HistoryNote(path=path, recorded=recorded is not None,
                       seq=recorded.seq if recorded else None, runs=runs,
                       pruned=recorded.pruned if recorded else 0, problem=problem,
                       baseline=plan.baseline, scope=scope.describe(),
                       compared=len([c for c in compared if c != run.run_id]),
                       previous=next((c for c in compared if c != run.run_id), None),
                       left_out=left_out,
                       strips=tuple((cell, tuple(points)) for cell, points in strips.items()))
