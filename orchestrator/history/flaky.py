"""Flaky, broken, fixed: told apart from the history and the current run (pure).

A test's outcome changing means something only next to what went into the
cell: the project's content, the base image, the interpreter's own version and
the installed packages (:class:`CellInputs`). The rules:

- **flaky**: the test's outcome changed between two consecutive runs of the same
  cell whose inputs did not change, or it failed and then passed on a rerun
  inside one run (pytest-rerunfailures and the like, recorded in the JUnit);
- **broken**: it passed in the cell's previous run and fails now, and an input
  changed (the verdict names which: "base image moved 3.13.0 → 3.13.1",
  "packages: attrs 23.1.0 → 24.2.0");
- **fixed**: the reverse;
- inputs count as unchanged only when both runs recorded the project digest and
  the image digest and they are equal, the interpreter versions are equal, and the
  package sets are equal where both are known; unknown inputs never make a flip
  "flaky", since something may have changed unseen.

The flakiness rate of a test is its flips divided by the comparisons that could
have shown one (consecutive runs of a cell with unchanged inputs, plus reruns).
"""

from __future__ import annotations

import enum
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # results is not needed to read settings (start-up)
    from ..results import CellResult, RunResult


PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
_BAD = frozenset({FAILED, ERROR})
MAX_EVIDENCE = 10  # flips kept per test, the most recent
MAX_NAME = 1000  # characters of a test name kept
INCIDENT_MIN_TESTS = 10


def is_incident(bad: int, total: int) -> bool:
    """Whether a cell's run failed as a whole: more than half of at least
    INCIDENT_MIN_TESTS tests failed or errored (an import error, a dead service, a full
    disk). Such a run says something about the cell, nothing about any one test, so it
    is evidence neither of flakiness nor for or against a quarantine."""
    return total >= INCIDENT_MIN_TESTS and bad * 2 > total


def test_name(key: str) -> str:
    """The name a test is kept under: its key, capped at MAX_NAME characters (the JUnit
    is the container's; a name ends up in every row's index), unique by a digest."""
    if len(key) <= MAX_NAME:
        return key
    import hashlib  # rarely needed: every command that reads matrix.yaml imports this module

    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]
    return f"{key[:MAX_NAME - 30]}…[{digest}]"


def outcome_text(outcome: object) -> str:
    """An outcome as its string, whether it is a str or a str-valued Enum."""
    return str(getattr(outcome, "value", outcome))


@dataclass(frozen=True, slots=True)
class CellInputs:
    """What went into a cell: if none of it changed, an outcome should not have."""

    project: str
    image: str
    interpreter: str
    packages: tuple[tuple[str, str], ...] | None = None  # sorted (name, version); None: unknown

    @classmethod
    def of(cls, cell: CellResult, packages: Mapping[str, str] | None = None) -> CellInputs:
        """``packages``: the caller's; else the cell's own record where it has one."""
        packages = packages or cell.packages or None
        return cls(project=cell.project_digest, image=cell.image_digest,
                   interpreter=cell.interpreter.version,
                   packages=tuple(sorted(packages.items())) if packages is not None else None)

    def same_as(self, other: CellInputs) -> bool:
        """Known to be unchanged (see the module's rules)."""
        if not (self.project and self.image and self.interpreter):
            return False
        if (self.project, self.image, self.interpreter) != \
                (other.project, other.image, other.interpreter):
            return False
        return self.packages is None or other.packages is None or self.packages == other.packages

    def changes(self, before: CellInputs) -> tuple[str, ...]:
        """What changed from ``before`` to these inputs, in words."""
        out = []
        if self.project != before.project:
            out.append("project changed" if self.project and before.project
                       else "project not recorded in both runs")
        if self.interpreter != before.interpreter:
            out.append(f"interpreter {before.interpreter or '?'} → {self.interpreter or '?'}")
        if self.image != before.image:
            out.append("base image moved" if self.image and before.image
                       else "base image not recorded in both runs")
        if self.packages is not None and before.packages is not None \
                and self.packages != before.packages:
            out.append("packages: " + package_changes(dict(before.packages),
                                                      dict(self.packages)))
        return tuple(out)


def package_changes(before: Mapping[str, str], after: Mapping[str, str], *,
                    limit: int = 8) -> str:
    """``attrs 23.1.0 → 24.2.0, +tomli 2.0.1, -six 1.16.0`` (the first ``limit``)."""
    parts = [f"{n} {before[n]} → {after[n]}" for n in sorted(before.keys() & after.keys())
             if before[n] != after[n]]
    parts += [f"+{n} {after[n]}" for n in sorted(after.keys() - before.keys())]
    parts += [f"-{n} {before[n]}" for n in sorted(before.keys() - after.keys())]
    more = f", and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


class Observation(NamedTuple):
    """One test's outcome in one cell of one run (a NamedTuple for the reason given on
    :class:`orchestrator.history.records.HistoryPoint`: there are many)."""

    test: str
    cell: str
    seq: int  # run order in the history (higher is later)
    run_id: str
    outcome: str  # passed, failed, error, skipped
    rerun: bool  # passed only after a rerun inside the run
    inputs: CellInputs


def observations_of(run: RunResult, *, seq: int,
                    packages: Mapping[str, Mapping[str, str]] | None = None,
                    tests: Collection[str] | None = None) -> list[Observation]:
    """The current run's observations (when it is not, or cannot be, in the history);
    ``tests``: only those."""
    out = []
    for cell in run.cells:
        inputs = CellInputs.of(cell, (packages or {}).get(cell.id))
        for case in cell.cases:
            if tests is not None and test_name(case.key) not in tests:
                continue
            out.append(Observation(test=test_name(case.key), cell=cell.id, seq=seq,
                                   run_id=run.run_id, outcome=outcome_text(case.outcome),
                                   rerun=case.flaky, inputs=inputs))
    return out


@dataclass(frozen=True, kw_only=True)
class Flip:
    """Evidence: the outcome changed with nothing changed (``before`` is None: a rerun)."""

    cell: str
    before: str | None  # run id
    after: str
    was: str
    now: str

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell, "before": self.before, "after": self.after,
                "from": self.was, "to": self.now}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flip:
        return cls(cell=str(data["cell"]), before=data.get("before"), after=str(data["after"]),
                   was=str(data["from"]), now=str(data["to"]))


@dataclass(frozen=True, kw_only=True)
class FlakyTest:
    """A test whose outcome changed without a cause."""

    test: str
    cells: tuple[str, ...]  # where it flipped
    flips: int
    comparisons: int  # chances to flip: consecutive unchanged runs, plus reruns
    runs: int  # distinct runs in which it passed or failed in those cells
    evidence: tuple[Flip, ...]  # the most recent flips
    flipped_runs: int = 0  # distinct runs in which it flipped

    @property
    def rate(self) -> float:
        return self.flips / self.comparisons if self.comparisons else 0.0

    def describe(self) -> str:
        """``flaky in 4 of the last 20 runs``."""
        return f"flaky in {self.flipped_runs} of the last {self.runs} runs"

    def to_json(self) -> dict[str, Any]:
        """The entry of results.json's top-level ``flaky`` list."""
        return {"test": self.test, "cells": list(self.cells), "flips": self.flips,
                "runs": self.runs, "rate": round(self.rate, 4),
                "comparisons": self.comparisons, "flipped_runs": self.flipped_runs,
                "evidence": [f.to_json() for f in self.evidence]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlakyTest:
        return cls(test=str(data["test"]), cells=tuple(str(c) for c in data["cells"]),
                   flips=int(data["flips"]), comparisons=int(data["comparisons"]),
                   runs=int(data["runs"]), flipped_runs=int(data.get("flipped_runs", 0)),
                   evidence=tuple(Flip.from_json(f) for f in data.get("evidence", ())))


def _series(observations: Iterable[Observation]) -> dict[tuple[str, str], list[Observation]]:
    series: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for obs in observations:
        if obs.outcome != SKIPPED:  # a skip says nothing about passing or failing
            series[(obs.test, obs.cell)].append(obs)
    for points in series.values():
        points.sort(key=lambda o: o.seq)
    return series


@dataclass
class _Tally:
    cells: set[str] = field(default_factory=set)
    flips: list[tuple[int, Flip]] = field(default_factory=list)  # (run order, flip)
    flipped: set[int] = field(default_factory=set)  # run order of the runs with a flip
    comparisons: int = 0
    runs: set[int] = field(default_factory=set)


def find_flaky(observations: Iterable[Observation], *,
               max_evidence: int = MAX_EVIDENCE) -> list[FlakyTest]:
    """Every test with at least one flip, the flakiest first."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for (test, cell), points in _series(observations).items():
        tally = tallies[test]
        flips = [(obs.seq, Flip(cell=cell, before=None, after=obs.run_id, was=FAILED,
                                now=obs.outcome)) for obs in points if obs.rerun]
        tally.comparisons += len(flips)
        for before, after in itertools.pairwise(points):
            if not after.inputs.same_as(before.inputs):
                continue
            tally.comparisons += 1
            if (before.outcome in _BAD) != (after.outcome in _BAD):
                flips.append((after.seq, Flip(cell=cell, before=before.run_id,
                                              after=after.run_id, was=before.outcome,
                                              now=after.outcome)))
        if flips:
            tally.cells.add(cell)
            tally.flips += flips
            tally.flipped.update(seq for seq, _ in flips)
            tally.runs.update(o.seq for o in points)
    out = []
    for test, tally in tallies.items():
        if not tally.flips:
            continue
        ordered = [flip for _, flip in sorted(tally.flips, key=lambda p: p[0])]
        out.append(FlakyTest(test=test, cells=tuple(sorted(tally.cells)), flips=len(ordered),
                             comparisons=tally.comparisons, runs=len(tally.runs),
                             evidence=tuple(ordered[-max_evidence:]),
                             flipped_runs=len(tally.flipped)))
    return sorted(out, key=lambda f: (-f.rate, -f.flips, f.test))


class Verdict(enum.StrEnum):
    """What became of a test in a cell since the cell's previous run."""

    BROKEN = "broken"  # passed before, fails now, and an input changed
    FIXED = "fixed"  # failed before, passes now, and an input changed
    FLAKY = "flaky"  # changed with nothing changed, or passed on a rerun
    STILL_FAILING = "still failing"
    NEW_FAILURE = "failing, no earlier result"  # the cell or the test is new to the history


@dataclass(frozen=True, kw_only=True)
class TestVerdict:
    """One test in one cell of the current run, against the cell's previous run."""

    __test__ = False

    test: str
    cell: str
    verdict: Verdict
    previous_run: str | None
    changes: tuple[str, ...] = ()  # what changed in the cell's inputs, in words
    flaky_rate: float | None = None  # the test's rate in the history, when it has flipped

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "cell": self.cell, "verdict": self.verdict.value,
                "previous_run": self.previous_run, "changes": list(self.changes),
                "flaky_rate": self.flaky_rate}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestVerdict:
        rate = data.get("flaky_rate")
        return cls(test=str(data["test"]), cell=str(data["cell"]),
                   verdict=Verdict(data["verdict"]), previous_run=data.get("previous_run"),
                   changes=tuple(str(c) for c in data.get("changes", ())),
                   flaky_rate=float(rate) if rate is not None else None)


def classify(current: Iterable[Observation], previous: Iterable[Observation],
             flaky: Iterable[FlakyTest] = ()) -> list[TestVerdict]:
    """Verdicts for the current run's tests that fail now or failed in the cell's previous
    observation: ``previous`` holds the history's observations (any run older than the
    current one; only each (test, cell)'s latest counts). Passing-and-passed tests are
    left out. ``flaky`` (from :func:`find_flaky`) adds each test's known rate."""
    rates = {f.test: f.rate for f in flaky}
    latest: dict[tuple[str, str], Observation] = {}
    for obs in previous:
        key = (obs.test, obs.cell)
        if obs.outcome != SKIPPED and (key not in latest or latest[key].seq < obs.seq):
            latest[key] = obs
    out = []
    for now in current:
        if now.outcome == SKIPPED:
            continue
        before = latest.get((now.test, now.cell))
        bad_now = now.outcome in _BAD
        if before is None or before.seq >= now.seq:
            if bad_now:
                out.append(TestVerdict(test=now.test, cell=now.cell, previous_run=None,
                                       verdict=Verdict.NEW_FAILURE,
                                       flaky_rate=rates.get(now.test)))
            elif now.rerun:
                out.append(TestVerdict(test=now.test, cell=now.cell, previous_run=None,
                                       verdict=Verdict.FLAKY, flaky_rate=rates.get(now.test)))
            continue
        bad_before = before.outcome in _BAD
        same = now.inputs.same_as(before.inputs)
        if bad_now and bad_before:
            verdict: Verdict | None = Verdict.STILL_FAILING
        elif bad_now != bad_before:
            verdict = Verdict.FLAKY if same else (Verdict.BROKEN if bad_now else Verdict.FIXED)
        else:
            verdict = Verdict.FLAKY if now.rerun else None
        if verdict is not None:
            out.append(TestVerdict(test=now.test, cell=now.cell, verdict=verdict,
                                   previous_run=before.run_id,
                                   changes=() if same else now.inputs.changes(before.inputs),
                                   flaky_rate=rates.get(now.test)))
    return sorted(out, key=lambda v: (v.test, v.cell))
