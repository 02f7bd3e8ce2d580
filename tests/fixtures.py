"""A fixed RunResult for rendering tests: every status, user axes, hostile text."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.containerrecords import Interpreter
from orchestrator.errors import Stage
from orchestrator.results import (
    CellResult,
    Gate,
    RunResult,
    Status,
    TestCase,
    TestCounts,
    TestOutcome,
)

LABELS = {"org.opencontainers.image.licenses": "PSF-2.0",
          "org.opencontainers.image.source": "https://github.com/docker-library/python",
          "org.opencontainers.image.version": "3.12.1"}


def _cell(cell_id: str, python: str, variant: str, status: Status, *,
          cases: tuple[TestCase, ...] = (), reason: str = "", stage: Stage = Stage.NONE,
          gating: bool = True, axes: dict[str, str] | None = None) -> CellResult:
    return CellResult(
        id=cell_id, python=python, variant=variant, axes=axes or {},
        image=f"127.0.0.1:5000/library/python:{python}-{variant}",
        image_digest="sha256:" + "ab" * 32 if status is not Status.SKIPPED else "",
        built_image=f"tagmatrix/sample:{python}-{variant}-0123456789ab",
        base_size=273_700_000, image_size=294_900_000 if variant == "slim" else 61_000_000,
        base_labels=LABELS, engine="local", node="vm", status=status, reason=reason,
        stage=stage, gating=gating, exit_code={Status.PASSED: 0, Status.FAILED: 1}.get(status),
        duration_s=1.25, build_s=0.1, run_s=0.8, started_at="2026-11-26T18:00:00.000Z",
        finished_at="2026-11-26T18:00:01.250Z", log=f"logs/{cell_id}.log",
        tests=TestCounts.of(cases), cases=cases,
        interpreter=Interpreter(version=(f"{python}.1" if "-rc" not in python
                                         else python.replace("-rc", ".0rc1")),
                                executable="/usr/local/bin/python",
                                implementation="CPython") if cases else Interpreter(),
        output_tail="\x1b[32m5 passed\x1b[0m in 0.10s\n")


OK = (TestCase(classname="tests.test_a", name="test_one", time=0.01),
      TestCase(classname="tests.test_a", name="test_two", time=0.02))
BROKEN = (*OK[:1], TestCase(classname="tests.test_a", name="test_two", outcome=TestOutcome.FAILED,
                            message="AssertionError: 1 != 2 <&>", text="Traceback\n  ..."))


def sample_run() -> RunResult:
    cells = (
        _cell("3.12-slim", "3.12", "slim", Status.PASSED, cases=OK),
        _cell("3.12-alpine", "3.12", "alpine", Status.ERROR, stage=Stage.PULL,
              reason="127.0.0.1:5000/library/python:3.12-alpine: tag not found"),
        _cell("3.13-slim", "3.13", "slim", Status.FAILED, cases=BROKEN,
              reason="exit code 1; 1 failed, 0 errors"),
        _cell("3.13-alpine", "3.13", "alpine", Status.TIMEOUT, stage=Stage.RUN,
              reason="exceeded the 30 s timeout; container killed"),
        _cell("3.15-rc-slim", "3.15-rc", "slim", Status.FAILED, cases=BROKEN, gating=False,
              reason="exit code 1; 1 failed, 0 errors"),
        _cell("3.15-rc-alpine", "3.15-rc", "alpine", Status.SKIPPED,
              reason="python:3.15-rc-alpine is not published (lab)"),
    )
    return RunResult(run_id="20261126T180000Z-abcdef", started_at="2026-11-26T18:00:00.000Z",
                     finished_at="2026-11-26T18:00:09.000Z", duration_s=9.0, cells=cells,
                     config="matrix.yaml", profile="nightly")


def history_run() -> RunResult:
    """sample_run with what a history adds: strips, a flaky test, verdicts, slowdowns
    (ratios in another order than their tests' names), a warnings ledger, quarantine."""
    from orchestrator.history.flaky import FlakyTest, Flip, TestVerdict, Verdict
    from orchestrator.history.slowdown import Against, Slowdown
    from orchestrator.insights import Check, Exempt, Exemption, HistoryNote, Insights, StripPoint
    from orchestrator.warnings_ledger import LedgerEntry

    run = sample_run()
    statuses = ("passed", "failed", "passed", "passed", "failed", "passed", "failed")
    strips = tuple((cell.id, tuple(
        StripPoint(run_id=f"n-{i:02d}", started_at=f"2026-11-{19 + i}T02:00:00.000Z",
                   status=status) for i, status in enumerate((*statuses, str(cell.status)))))
        for cell in run.cells)
    slow = tuple(Slowdown(test=f"tests.test_speed::test_{name}", cell="3.13-slim",
                          against=Against.CELL, baseline_cell="3.12-slim", before_s=0.5,
                          after_s=0.5 * ratio)
                 for name, ratio in (("a", 2.5), ("b", 6.0), ("c", 4.0), ("d", 3.0)))
    flaky = FlakyTest(test="tests.test_a::test_two", cells=("3.13-slim",), flips=3,
                      comparisons=6, runs=7, flipped_runs=3,
                      evidence=(Flip(cell="3.13-slim", before="n-05", after="n-06",
                                     was="failed", now="passed"),))
    ledger = (
        LedgerEntry(category="DeprecationWarning", message="ast.Num is deprecated",
                    location="<stdlib>/ast.py:587", pythons=("3.13",), cells=("3.13-slim",),
                    tests=("tests/test_a.py::test_one",), count=2, new=True, test_count=1),
        LedgerEntry(category="DeprecationWarning",
                    message="datetime.datetime.utcnow() is deprecated and scheduled for "
                            "removal in a future version.", location="src/pkg/clock.py:14",
                    pythons=("3.12", "3.13"), cells=("3.12-slim", "3.13-slim"),
                    tests=("tests/test_a.py::test_one",), count=14, new=False, test_count=7))
    insights = Insights(
        history=HistoryNote(path=".tagmatrix/history.db", recorded=True, seq=8, runs=8,
                            strips=strips),
        flaky=(flaky,),
        verdicts=(TestVerdict(test="tests.test_a::test_two", cell="3.13-slim",
                              verdict=Verdict.BROKEN, previous_run="n-06",
                              changes=("interpreter 3.13.0 → 3.13.1",)),),
        slowdowns=slow, ledger=ledger,
        held=(Exempt(test="tests.test_a::test_two", cell="3.13-slim", kind=Exemption.FLAKY,
                     why="flaky in 3 of the last 7 runs"),),
        removable=("quarantine[0] tests.test_net::* until 2026-12-31: passed in each of the "
                   "last 5 runs (1 test(s)); consider removing it",),
        checks=(Check.SLOWDOWNS,))
    return replace(run, gate=Gate.REGRESSIONS, insights=insights)
