"""Baseline comparison and attribution, from fixed results."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.changes import Change
from orchestrator.compare import attribute, compare, regressed, unexpected_passes
from orchestrator.containerrecords import Interpreter
from orchestrator.errors import Stage
from orchestrator.results import (
    Attempt,
    CellResult,
    RunResult,
    Status,
    TestCase,
    TestCounts,
    TestOutcome,
)

NEW_FAILURE, FIXED, STILL_FAILING = Change.NEW_FAILURE, Change.FIXED, Change.STILL_FAILING
UNCHANGED, NEW_CELL = Change.UNCHANGED, Change.NEW_CELL
PROJECT_A, PROJECT_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMAGE_1, IMAGE_2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def cell(cell_id: str, status: Status, failing: tuple[str, ...] = (), *,
         version: str = "3.15.0b2", image: str = IMAGE_1, project: str = PROJECT_A,
         gating: bool = True, attempts: tuple[Attempt, ...] = ()) -> CellResult:
    return CellResult(id=cell_id, python=cell_id.split("-", maxsplit=1)[0], variant="slim",
                      status=status,
                      failing_tests=failing, image_digest=image, project_digest=project,
                      interpreter=Interpreter(version=version), gating=gating,
                      attempts=attempts)


def run(*cells: CellResult, run_id: str = "r") -> RunResult:
    return RunResult(run_id=run_id, started_at="", finished_at="", duration_s=1.0, cells=cells)


def test_cells_and_tests_are_classified() -> None:
    before = run(cell("a-slim", Status.PASSED), cell("b-slim", Status.FAILED, ("t::x",)),
                 cell("c-slim", Status.FAILED, ("t::y", "t::z")), cell("d-slim", Status.PASSED),
                 run_id="night-1")
    after = compare(run(cell("a-slim", Status.FAILED, ("t::new",), project=PROJECT_B),
                        cell("b-slim", Status.PASSED),
                        replace(cell("c-slim", Status.FAILED, ("t::y", "t::w")), cases=(
                            TestCase(classname="t", name="y", outcome=TestOutcome.FAILED),
                            TestCase(classname="t", name="w", outcome=TestOutcome.FAILED),
                            TestCase(classname="t", name="z", outcome=TestOutcome.PASSED))),
                        cell("d-slim", Status.PASSED), cell("e-slim", Status.PASSED)), before)
    changes = {c.id: c.comparison.to_json() for c in after.cells if c.comparison}
    assert after.baseline == "night-1"
    assert changes["a-slim"]["cell"] == NEW_FAILURE
    assert changes["a-slim"]["tests"] == {NEW_FAILURE: ["t::new"]}
    assert changes["b-slim"] == {"cell": FIXED, "tests": {FIXED: ["t::x"]}, "attribution": ""}
    assert changes["c-slim"]["cell"] == STILL_FAILING
    assert changes["c-slim"]["tests"] == {NEW_FAILURE: ["t::w"], STILL_FAILING: ["t::y"],
                                          FIXED: ["t::z"]}
    assert changes["d-slim"]["cell"] == UNCHANGED
    assert changes["e-slim"]["cell"] == NEW_CELL
    assert [c.id for c in regressed(after)] == ["a-slim", "c-slim"]
    assert "project changed, base image unchanged" in changes["a-slim"]["attribution"]


def test_attribution_names_what_moved() -> None:
    old = cell("x", Status.PASSED)
    assert attribute(old, replace(old, interpreter=Interpreter(version="3.15.0b3"),
                                  image_digest=IMAGE_2)) == \
        "base image moved: 3.15.0b2 → 3.15.0b3 (111111111111 → 222222222222), " \
        "project unchanged"
    both = attribute(old, replace(old, image_digest=IMAGE_2, project_digest=PROJECT_B))
    assert both.startswith("base image moved: 3.15.0b2, rebuilt")
    assert both.endswith("and the project changed")
    assert attribute(old, old).startswith("neither the project nor the base image changed")


def test_a_cell_that_passed_on_retry_is_flaky() -> None:
    tries = (Attempt(number=1, status=Status.ERROR, stage=Stage.PULL),
             Attempt(number=2, status=Status.PASSED))
    after = compare(run(cell("a-slim", Status.PASSED, attempts=tries)),
                    run(cell("a-slim", Status.PASSED)))
    assert after.cells[0].comparison is not None
    assert after.cells[0].comparison.cell is Change.FLAKY
    assert regressed(after) == []


def test_allowed_to_fail_regressions_do_not_gate_and_passes_are_called_out() -> None:
    after = compare(run(cell("rc-slim", Status.FAILED, ("t::x",), gating=False),
                        cell("rc-alpine", Status.PASSED, gating=False)),
                    run(cell("rc-slim", Status.PASSED, gating=False),
                        cell("rc-alpine", Status.FAILED, gating=False)))
    assert regressed(after) == []
    assert [c.id for c in unexpected_passes(after)] == ["rc-alpine"]


def test_a_failing_cell_that_now_runs_no_tests_is_a_new_failure_and_fixes_nothing() -> None:
    """Before: 24 tests failed. Now conftest no longer imports (pytest exit 4, no JUnit):
    the regressions gate must fail, and the 24 did not get fixed."""
    failing = tuple(f"t::pager[{i}]" for i in range(24))
    before = run(cell("3.13-slim", Status.FAILED, failing), cell("3.12-slim", Status.FAILED,
                                                                   failing))
    before = replace(before, cells=tuple(replace(c, tests=TestCounts(total=2459, passed=2435,
                                                                     failed=24))
                                         for c in before.cells))
    broken = replace(cell("3.13-slim", Status.FAILED, project=PROJECT_B),
                     reason="exit code 4; no JUnit file; it said: ImportError while loading "
                            "conftest", exit_code=4)
    still = replace(cell("3.12-slim", Status.FAILED, failing[:23]),
                    tests=TestCounts(total=2459, passed=2436, failed=23))
    after = compare(run(broken, still), before)
    changes = {c.id: c.comparison for c in after.cells if c.comparison}
    assert changes["3.13-slim"].cell is NEW_FAILURE
    assert changes["3.13-slim"].tests_of(FIXED) == ()
    assert "project changed" in changes["3.13-slim"].attribution
    assert changes["3.12-slim"].cell is STILL_FAILING
    assert [c.id for c in regressed(after)] == ["3.13-slim"]


def test_failing_in_another_way_is_a_new_failure() -> None:
    before = run(cell("a-slim", Status.FAILED, ("t::x",)), cell("b-slim", Status.ERROR))
    after = compare(run(cell("a-slim", Status.TIMEOUT), cell("b-slim", Status.ERROR)), before)
    changes = {c.id: c.comparison for c in after.cells if c.comparison}
    assert changes["a-slim"].cell is NEW_FAILURE  # it hangs now
    assert changes["b-slim"].cell is STILL_FAILING
