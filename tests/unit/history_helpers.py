"""Runs to record in histories: a few cells, named tests, chosen outcomes and times."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.containerrecords import Interpreter
from orchestrator.results import (
    Attempt,
    CellResult,
    RunResult,
    Status,
    TestCase,
    TestCounts,
    TestOutcome,
)

PROJECT = "sha256:" + "a" * 64
IMAGE = "sha256:" + "1" * 64
VERSIONS = {"3.12": "3.12.1", "3.13": "3.13.0"}


def case(key: str, outcome: str = "passed", time: float = 0.01, *,
         flaky: bool = False) -> TestCase:
    classname, _, name = key.rpartition("::")
    return TestCase(classname=classname, name=name, outcome=TestOutcome(outcome), time=time,
                    flaky=flaky)


def cell(cell_id: str, cases: tuple[TestCase, ...] = (), *, status: Status | None = None,
         project: str = PROJECT, image: str = IMAGE, version: str | None = None,
         attempts: tuple[Attempt, ...] = ()) -> CellResult:
    python, _, variant = cell_id.partition("-")
    failing = tuple(c.key for c in cases if c.outcome in ("failed", "error"))
    if status is None:
        status = Status.FAILED if failing else Status.PASSED
    return CellResult(id=cell_id, python=python, variant=variant, status=status,
                      image_digest=image, project_digest=project,
                      interpreter=Interpreter(version=version or VERSIONS.get(python,
                                                                              python + ".0")),
                      tests=TestCounts.of(cases), cases=cases, failing_tests=failing,
                      flaky_tests=tuple(c.key for c in cases if c.flaky),
                      attempts=attempts or (Attempt(number=1, status=status),),
                      duration_s=1.5, exit_code=1 if failing else 0)


def run(run_id: str, *cells: CellResult, cancelled: str | None = None,
        profile: str | None = "nightly") -> RunResult:
    return RunResult(run_id=run_id, started_at=f"2026-11-{run_id[-2:]}T02:00:00.000Z",
                     finished_at=f"2026-11-{run_id[-2:]}T02:01:00.000Z", duration_s=60.0,
                     cells=cells, config="matrix.yaml", profile=profile, cancelled=cancelled)


def simple_run(run_id: str, outcomes: Mapping[str, Mapping[str, str]], *,
               cancelled: str | None = None, profile: str | None = "nightly") -> RunResult:
    """{cell id: {test key: outcome}} -> a run (times 0.01 s)."""
    cells = tuple(cell(cid, tuple(case(k, o) for k, o in tests.items()))
                  for cid, tests in outcomes.items())
    return run(run_id, *cells, cancelled=cancelled, profile=profile)
