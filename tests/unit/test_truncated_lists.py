"""Every list cut short says how many more there are and where they all are."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.history.slowdown import Against, Slowdown
from orchestrator.insights import Check, Insights
from orchestrator.reports import html, nightly, summary
from orchestrator.results import RunResult

from .history_helpers import case, cell, run


def _slow_night(count: int) -> RunResult:
    """``count`` slowdowns found, with --fail-on slowdowns."""
    slow = tuple(Slowdown(test=f"t::s{i:02d}", cell="3.13-slim", against=Against.CELL,
                          baseline_cell="3.12-slim", before_s=1.0, after_s=3.0)
                 for i in range(count))
    night = run("n-01", cell("3.12-slim", (case("t::a"),)), cell("3.13-slim", (case("t::a"),)))
    return replace(night, insights=Insights(slowdowns=slow, checks=(Check.SLOWDOWNS,)))


def test_a_gate_with_24_findings_says_14_more_and_where() -> None:
    night = _slow_night(24)
    [gates] = [s for s in nightly.sections(night) if s.title == "Gates"]
    texts = [text for _, text in gates.lines]
    assert texts[1] == "--fail-on slowdowns: failed (24)"
    assert texts[2:12] == [f"  t::s{i:02d}: 3.13-slim takes 3.0\N{MULTIPLICATION SIGN} as "
                           "long as 3.12-slim (1.0 s → 3.0 s)" for i in range(10)]
    assert texts[12:] == ["  ... and 14 more (index.html has them all)"]
    assert "... and 14 more (index.html has them all)" in summary.markdown(night)
    page = html.render(night)
    assert "t::s23: 3.13-slim takes" in page  # index.html: every finding
    [(level, _, text)] = [a for a in nightly.github_annotations(night) if a[0] == "error"]
    assert text.endswith("; and 14 more (summary.md, index.html)")
    assert level == "error"


def test_ten_findings_are_not_cut() -> None:
    [gates] = [s for s in nightly.sections(_slow_night(10)) if s.title == "Gates"]
    assert not any("more" in text for _, text in gates.lines)


def test_summary_md_says_how_many_failing_tests_it_left_out() -> None:
    night = run("n-01", cell("3.12-slim", tuple(case(f"t::f{i:03d}", "failed")
                                                for i in range(205))))
    text = summary.markdown(night)
    assert "... and 5 more failing tests (index.html, junit.xml)" in text


def test_a_cells_details_say_how_many_failures_they_left_out() -> None:
    night = run("n-01", cell("3.12-slim", tuple(case(f"t::f{i:03d}", "failed")
                                                for i in range(23))))
    assert "... and 3 more failures (cells/3.12-slim.xml)" in html.render(night)
