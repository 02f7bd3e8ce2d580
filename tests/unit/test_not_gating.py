"""A test that does not gate says so wherever it is listed, and gets no ::error."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from orchestrator.compare import compare
from orchestrator.insights import Exempt, Exemption, Insights
from orchestrator.reports import html, summary
from orchestrator.reports.github import commands
from orchestrator.results import Gate, RunResult

from .history_helpers import case, cell, run

WHY = "flaky in 2 of the last 3 runs"
CELLS = ("3.10-slim", "3.11-slim")


def _night() -> RunResult:
    """Last night everything passed; tonight t::flaky fails in both cells (the history
    knows it as flaky) and t::broken newly fails in 3.11-slim only."""
    before = run("n-01", *(cell(c, (case("t::flaky"), case("t::broken"))) for c in CELLS))
    tonight = run("n-02", cell(CELLS[0], (case("t::flaky", "failed"), case("t::broken"))),
                  cell(CELLS[1], (case("t::flaky", "failed"), case("t::broken", "failed"))))
    tonight = replace(tonight, cells=tuple(replace(c, reason="exit code 1")
                                           for c in tonight.cells))
    held = tuple(Exempt(test="t::flaky", cell=c, kind=Exemption.FLAKY, why=WHY) for c in CELLS)
    return replace(compare(tonight, before), gate=Gate.REGRESSIONS,
                   insights=Insights(held=held))


def _only_flaky(night: RunResult) -> RunResult:
    """The same night without the real regression: every new failure is held."""
    cells = tuple(replace(c, cases=c.cases[:1], failing_tests=("t::flaky",)) for c in night.cells)
    before = run("n-01", *(cell(c, (case("t::flaky"),)) for c in CELLS))
    return replace(compare(replace(night, cells=cells), before), gate=Gate.REGRESSIONS,
                   insights=night.insights)


def test_held_new_failures_say_so_in_the_comparison_and_failing_tests() -> None:
    night = _night()
    lines = summary.comparison_lines(night)
    assert ("not gating", f"3.10-slim: t::flaky: new failure (not gating: {WHY})") in lines
    assert ("new failure", "3.11-slim: t::broken: new failure") in lines
    console = Console(record=True, width=200)
    summary.print_terminal(night, console)
    text = console.export_text()
    assert f"not gating: 3.10-slim: t::flaky: new failure (not gating: {WHY})" in text
    assert f"t::flaky  in 3.10-slim, 3.11-slim (not gating in 3.10-slim, 3.11-slim: {WHY})" \
        in text
    assert "FAILED: 1 cell(s) with new failures (gate: regressions)" in text
    markdown = summary.markdown(night)
    assert summary._md(f"3.10-slim: t::flaky: new failure (not gating: {WHY})") in markdown
    page = html.render(night)
    assert f"3.10-slim: t::flaky: new failure (not gating: {WHY})" in page
    assert f'title="not gating: {WHY}">failed<br><small>not gating</small>' in page


def test_the_verdict_line_counts_what_it_left_out() -> None:
    night = _only_flaky(_night())
    assert night.gate_passed
    assert summary.verdict_line(night).startswith(
        "OK: no new failures that gate (2 new failure(s) not gating: known flaky or "
        "quarantined; 2 still failing, gate passed: regressions)")
    # the cells newly fail only through held tests: listed as such
    assert ("not gating", "3.10-slim: new failure (exit code 1) (not gating: its failing "
            "tests are known flaky or quarantined); neither the project nor the base image "
            "changed (3.10.0): look for flakiness or the environment") in \
        [(k, t) for k, t in summary.comparison_lines(night)]


def test_no_error_annotation_for_what_does_not_gate() -> None:
    held_only = commands(_only_flaky(_night()), token="t")
    assert [line for line in held_only if line.startswith("::error")] == []
    assert "::warning title=tagmatrix 3.10-slim failed::exit code 1 (not gating: no new " \
           "failure that gates)" in held_only
    assert f"::warning title=not gating in 3.10-slim::t::flaky: {WHY}" in held_only
    errors = [line for line in commands(_night(), token="t") if line.startswith("::error")]
    # the real regression only: its cell, and its one new failure (not the flaky test)
    assert [line.split("::")[1] for line in errors] == \
        ["error title=tagmatrix 3.11-slim failed", "error title=new failure in 3.11-slim"]
    assert errors[1].split("::", 2)[2].startswith("t::broken; ")


def test_an_allowed_to_fail_cell_says_its_new_failures_do_not_gate() -> None:
    night = _night()
    night = replace(night, cells=(night.cells[0], replace(night.cells[1], gating=False)))
    assert ("not gating", "3.11-slim: t::broken: new failure (not gating: allowed to fail)") \
        in summary.comparison_lines(night)
