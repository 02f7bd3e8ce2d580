"""What the history returns and takes: plain frozen values, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from ..results import CellResult, RunResult


@dataclass(frozen=True, kw_only=True)
class RunMeta:
    """What the history keeps about a run besides its results."""

    matrix_hash: str  # of matrix.yaml's bytes
    git_commit: str | None = None
    git_branch: str | None = None
    # cell id -> installed packages; a cell without an entry here uses its own record
    # (CellResult.packages) where it has one
    packages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    recorded_at: str = ""  # ISO 8601; default now


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Which earlier runs a run is compared with: those of the same profile on the same
    branch or, without a branch (no git, a detached HEAD outside CI), with the same
    matrix file. ``--baseline auto``, verdicts, flakiness, slowdowns against the history,
    quarantine's clean runs and the strips all use it, so a feature branch's failures
    never make a test "fixed" on main."""

    profile: str | None
    branch: str | None
    matrix_hash: str

    def sql(self) -> tuple[str, tuple[str | None, str]]:
        """A condition on the ``run`` table's columns, and its parameters."""
        column = "git_branch" if self.branch else "matrix_hash"
        return f"profile IS ? AND {column} = ?", (self.profile, self.branch or self.matrix_hash)

    def describe(self) -> str:
        """``branch main, profile nightly`` / ``this matrix file (no branch), no profile``."""
        where = f"branch {self.branch}" if self.branch else "this matrix file (no branch)"
        return f"{where}, " + (f"profile {self.profile}" if self.profile else "no profile")


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """What :meth:`History.record` did."""

    seq: int  # the run's place in the history
    tests: int  # per-test rows written
    pruned: int  # older runs removed to keep the limit


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A run as the history keeps it (per-test cases are not kept on cells)."""

    seq: int
    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    config: str
    profile: str | None
    matrix_hash: str
    git_commit: str | None
    git_branch: str | None
    cancelled: str | None
    baseline: str | None
    recorded_at: str
    cells: tuple[CellResult, ...]
    packages: Mapping[str, Mapping[str, str]]  # per cell id, where known

    def to_result(self) -> RunResult:
        """Enough of the run for :func:`orchestrator.compare.compare` (``--baseline auto``)."""
        return RunResult(run_id=self.run_id, started_at=self.started_at,
                         finished_at=self.finished_at, duration_s=self.duration_s,
                         cells=self.cells, config=self.config, profile=self.profile,
                         cancelled=self.cancelled, baseline=self.baseline)


class HistoryPoint(NamedTuple):
    """One test's result in one cell of one run.

    A NamedTuple, not a frozen dataclass: a query returns up to 100,000 of them, and a
    frozen dataclass costs ten times as much to make (object.__setattr__ per field).
    """

    test: str
    seq: int
    run_id: str
    started_at: str
    cell: str
    outcome: str
    duration_s: float
    rerun: bool


@dataclass(frozen=True, kw_only=True)
class TestHistory:
    """The answer to "this test over time": matching tests, their points, what was left out."""

    __test__ = False

    tests: tuple[str, ...]
    points: tuple[HistoryPoint, ...]  # by test, then oldest first
    omitted: int = 0  # further tests matched but not shown (max_tests)
