"""What a run learns from its history and its own cells, as one value for the reports.

Built by :mod:`orchestrator.nightly` after the cells ran; carried on
``RunResult.insights``; written as top-level keys of results.json (``history``,
``flaky``, ``verdicts``, ``incidents``, ``slowdowns``, ``warnings_ledger``,
``new_warnings``, ``quarantine``, ``not_gating``, ``gates``: the checks ``--fail-on``
added to the run's ``gate``) and read back from
there by ``tagmatrix report``, so a report renders the same from either.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, assert_never

from .history.flaky import FlakyTest, TestVerdict
from .history.slowdown import Slowdown, Threshold
from .warnings_ledger import LedgerEntry

if TYPE_CHECKING:
    from .results import RunResult

log = logging.getLogger(__name__)

STRIP_RUNS = 10  # outcomes per cell shown over time (this run included)
ABSENT = "absent"  # a strip's status for a run without the cell


class Check(enum.StrEnum):
    """What ``--fail-on`` can add to the run's gate (``results.Gate``: failures or
    regressions); each fails the run when it finds something."""

    SLOWDOWNS = "slowdowns"  # a gating cell's test slower than slowdown: {ratio, min_seconds}
    NEW_WARNINGS = "new-warnings"  # a warning no cell of the baseline raised


class Exemption(enum.StrEnum):
    """Why a failing test does not gate."""

    FLAKY = "flaky"  # the history knows it as flaky (with --fail-on regressions)
    QUARANTINE = "quarantine"  # a quarantine entry holds it


@dataclass(frozen=True, kw_only=True)
class StripPoint:
    """A cell's status in one run."""

    run_id: str
    started_at: str
    status: str  # a Status value

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "status": self.status}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StripPoint:
        return cls(run_id=str(data["run_id"]), started_at=str(data["started_at"]),
                   status=str(data["status"]))


@dataclass(frozen=True, kw_only=True)
class HistoryNote:
    """What happened with the history file in this run."""

    path: str
    recorded: bool  # this run is in the history now
    seq: int | None = None  # its place there
    runs: int = 0  # runs the history holds (after recording)
    pruned: int = 0  # older runs removed to keep history.keep
    problem: str = ""  # why it was not written or read ("" when all went well)
    baseline: str | None = None  # the run --baseline auto compared with
    strips: tuple[tuple[str, tuple[StripPoint, ...]], ...] = ()  # cell -> oldest first
    # which earlier runs the verdicts, flakiness, slowdowns and strips looked at
    scope: str = ""  # "branch main, profile nightly" (records.Scope.describe)
    compared: int = 0  # earlier runs of that scope in the history
    previous: str | None = None  # the latest of them
    left_out: int = 0  # earlier runs of other branches or profiles, not looked at

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "recorded": self.recorded, "seq": self.seq,
                "runs": self.runs, "pruned": self.pruned, "problem": self.problem,
                "baseline": self.baseline, "scope": self.scope, "compared": self.compared,
                "previous": self.previous, "left_out": self.left_out,
                "strips": {cell: [p.to_json() for p in points] for cell, points in self.strips}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryNote:
        return cls(path=str(data["path"]), recorded=bool(data["recorded"]), seq=data.get("seq"),
                   runs=int(data.get("runs", 0)), pruned=int(data.get("pruned", 0)),
                   problem=str(data.get("problem", "")), baseline=data.get("baseline"),
                   scope=str(data.get("scope", "")), compared=int(data.get("compared", 0)),
                   previous=data.get("previous"), left_out=int(data.get("left_out", 0)),
                   strips=tuple((str(cell), tuple(StripPoint.from_json(p) for p in points))
                                for cell, points in data.get("strips", {}).items()))


@dataclass(frozen=True, kw_only=True)
class Exempt:
    """A failing test that does not gate, and why."""

    test: str
    cell: str
    kind: Exemption
    why: str  # "flaky in 4 of the last 20 runs", "quarantined until 2026-12-31 (#123)"

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "cell": self.cell, "kind": self.kind.value, "why": self.why}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Exempt:
        return cls(test=str(data["test"]), cell=str(data["cell"]),
                   kind=Exemption(data["kind"]), why=str(data["why"]))


@dataclass(frozen=True, kw_only=True)
class Insights:
    """Flaky tests, verdicts, slowdowns, the warnings ledger, quarantine and the history."""

    history: HistoryNote | None = None  # None: --no-history
    flaky: tuple[FlakyTest, ...] = ()  # flaky over the history, this run included
    verdicts: tuple[TestVerdict, ...] = ()  # broken, fixed, flaky, still failing
    incidents: tuple[str, ...] = ()  # cells that failed as a whole (not judged per test)
    slowdowns: tuple[Slowdown, ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()
    new_warnings: tuple[str, ...] | None = None  # keys not in the baseline; None: not compared
    held: tuple[Exempt, ...] = ()  # failing tests that do not gate
    expired: tuple[str, ...] = ()  # quarantine entries past their date
    removable: tuple[str, ...] = ()  # quarantine entries whose tests pass again
    checks: tuple[Check, ...] = ()  # --fail-on slowdowns, new-warnings
    threshold: Threshold = field(default_factory=Threshold)

    def exempt(self) -> set[tuple[str, str]]:
        """(test, cell) pairs that do not gate (``held``)."""
        return {(e.test, e.cell) for e in self.held}

    def why_exempt(self) -> dict[tuple[str, str], str]:
        """(test, cell) -> why it does not gate, for every report that lists the test."""
        return {(e.test, e.cell): e.why for e in self.held}

    def findings(self, check: Check, run: RunResult) -> list[str]:
        """What ``check`` finds in ``run`` (its gating cells)."""
        gating = {c.id for c in run.cells if c.gating}
        match check:
            case Check.SLOWDOWNS:
                return [s.describe() for s in self.slowdowns if s.cell in gating]
            case Check.NEW_WARNINGS:
                return [f"new warning: {k}" for k in self.new_warnings or ()]
            case _:
                assert_never(check)

    def failed_checks(self, run: RunResult) -> list[tuple[Check, str]]:
        """(check, finding) of every check asked for that found something."""
        return [(check, found) for check in self.checks for found in self.findings(check, run)]

    def to_json(self) -> dict[str, Any]:
        return {
            "history": self.history.to_json() if self.history else None,
            "flaky": [f.to_json() for f in self.flaky],
            "verdicts": [v.to_json() for v in self.verdicts],
            "incidents": list(self.incidents),
            "slowdowns": [s.to_json() for s in self.slowdowns],
            "warnings_ledger": [e.to_json() for e in self.ledger],
            "new_warnings": None if self.new_warnings is None else list(self.new_warnings),
            "quarantine": {"expired": list(self.expired), "removable": list(self.removable)},
            "not_gating": [e.to_json() for e in self.held],
            "gates": {"checks": [c.value for c in self.checks],
                      "slowdown": {"ratio": self.threshold.ratio,
                                   "min_seconds": self.threshold.min_seconds,
                                   "history_runs": self.threshold.history_runs,
                                   "min_history": self.threshold.min_history}},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Insights | None:
        """From a results.json; None when it has none (an older tagmatrix, or damaged)."""
        if "flaky" not in data:
            return None
        try:
            history = data.get("history")
            quarantine = data.get("quarantine") or {}
            gates = data.get("gates") or {}
            new = data.get("new_warnings")
            return cls(
                history=HistoryNote.from_json(history) if history else None,
                flaky=tuple(FlakyTest.from_json(f) for f in data["flaky"]),
                verdicts=tuple(TestVerdict.from_json(v) for v in data.get("verdicts", ())),
                incidents=tuple(str(c) for c in data.get("incidents", ())),
                slowdowns=tuple(Slowdown.from_json(s) for s in data.get("slowdowns", ())),
                ledger=tuple(LedgerEntry.from_json(e) for e in data.get("warnings_ledger", ())),
                new_warnings=None if new is None else tuple(str(k) for k in new),
                held=tuple(Exempt.from_json(e) for e in data.get("not_gating", ())),
                expired=tuple(str(e) for e in quarantine.get("expired", ())),
                removable=tuple(str(e) for e in quarantine.get("removable", ())),
                checks=tuple(Check(c) for c in gates.get("checks", ())),
                threshold=Threshold(**gates["slowdown"]) if "slowdown" in gates else Threshold())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("results.json: the history's part is unreadable (%s): left out", exc)
            return None
