"""Recent-run strips readable without colour, and the history command's legends and
empty answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.history.records import RunMeta
from orchestrator.history.store import History
from orchestrator.insights import HistoryNote, Insights, StripPoint
from orchestrator.reports import nightly, nightly_html
from orchestrator.results import RunResult

from .history_helpers import case, cell, run, simple_run

STATUSES = ("passed", "failed", "error", "timeout", "skipped", "cancelled", "absent")


def _night() -> RunResult:
    points = tuple(StripPoint(run_id=f"n-{i:02d}", started_at="", status=s)
                   for i, s in enumerate(STATUSES))
    night = run("n-07", cell("3.12-slim", (case("t::a"),)))
    note = HistoryNote(path="h.db", recorded=True, seq=7, runs=7,
                       strips=(("3.12-slim", points),))
    return replace(night, insights=Insights(history=note))


def test_without_colour_a_strip_is_one_letter_per_run_with_a_legend() -> None:
    console = Console(record=True, width=120, color_system=None)
    nightly.print_terminal(_night(), console)
    text = console.export_text()
    assert "Recent runs, oldest first (P passed F failed E error T timeout s skipped " \
           "c cancelled - absent)" in text
    assert "  3.12-slim  PFETsc-\n" in text


def test_with_colour_a_strip_is_coloured_squares_and_a_dot_for_absent() -> None:
    console = Console(record=True, width=120, color_system="truecolor", force_terminal=True)
    nightly.print_terminal(_night(), console)
    text = console.export_text()
    assert "  3.12-slim  ■■■■■■·\n" in text
    assert "■ skipped" in text


def test_summary_md_and_index_html_show_absent_runs() -> None:
    night = _night()
    lines = nightly.markdown(night)
    assert "| `3.12-slim` | ✅❌💥⏱️⏭️🚫⬜ |" in lines
    assert '<span class="absent now" title="absent">' in \
        nightly_html.render(night)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    with History.open(path) as opened:
        for night, outcome in enumerate(("passed", "skipped", "failed"), start=1):
            opened.record(simple_run(f"n-{night:02d}", {"3.12-slim": {"t::a": outcome}}),
                          RunMeta(matrix_hash="m"))
    return path


def test_history_test_has_a_legend_with_skipped(
        history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--history", str(history), "--test", "t::a"]) == 0
    out = capsys.readouterr().out
    assert "(✓ passed ✗ failed E error T timeout s skipped c cancelled · absent)" in out
    assert "3.12-slim  ✓s✗" in out


@pytest.mark.parametrize(("argv", "said"), [
    (["--test", "nonexistent"], "no test matching 'nonexistent' in the history"),
    (["--test", "t::a", "--cell", "3.13-*"],
     "no result of a test matching 't::a' in the last 20 runs of cells matching '3.13-*'"),
    (["--cell", "3.13-*"], "no cell matching '3.13-*' in the history"),
])
def test_history_says_when_nothing_matches(
        history: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    assert main(["history", "--history", str(history), *argv]) == 0
    assert said in capsys.readouterr().out


def test_history_cell_says_how_many_failing_tests_it_left_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with History.open(tmp_path / "h.db") as opened:
        opened.record(simple_run("n-01", {"3.12-slim": {f"t::f{i}": "failed" for i in range(5)}}),
                      RunMeta(matrix_hash="m"))
    assert main(["history", "--history", str(tmp_path / "h.db"), "--cell", "3.12-*"]) == 0
    assert "last failing: t::f0, t::f1, t::f2, and 2 more (--json lists them all)" in \
        capsys.readouterr().out
