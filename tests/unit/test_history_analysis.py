"""A run's questions to a real history file: flaky or broken, slower, quarantined."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from orchestrator.history.analysis import judge, quarantine, slowdowns
from orchestrator.history.flaky import Verdict
from orchestrator.history.quarantine import parse_quarantine
from orchestrator.history.records import RunMeta
from orchestrator.history.slowdown import Against
from orchestrator.history.store import History

from .history_helpers import case, cell, run

META = RunMeta(matrix_hash="m1", git_branch="main",
               packages={"3.13-slim": {"attrs": "23.1.0"}})


def test_judge_a_run_recorded_or_not(tmp_path: Path) -> None:
    nights = [run(f"n-{n:02d}", cell("3.13-slim", (
        case("t::flaky", "failed" if n == 2 else "passed"), case("t::upgrade"))))
        for n in range(1, 4)]
    tonight = run("n-04", cell("3.13-slim", (
        case("t::flaky", "failed"), case("t::upgrade", "failed")),
        image="sha256:" + "2" * 64, version="3.13.1"))
    with History.open(tmp_path / "h.db") as history:
        for night in nights:
            history.record(night, META)
        before = judge(tonight, history, packages=META.packages)
        history.record(tonight, META)
        after = judge(tonight, history, packages=META.packages)
    assert before == after  # recorded or not, the same answer
    [flaky] = before.flaky
    assert (flaky.test, flaky.flips, flaky.comparisons) == ("t::flaky", 2, 2)
    verdicts = {v.test: v for v in before.verdicts}
    assert verdicts["t::upgrade"].verdict is Verdict.BROKEN
    assert verdicts["t::upgrade"].changes == ("interpreter 3.13.0 → 3.13.1", "base image moved")
    # It failed tonight, but tonight's image moved: that flip is not evidence of flakiness,
    # and the history's rate says how flaky it was.
    assert verdicts["t::flaky"].verdict is Verdict.BROKEN
    assert verdicts["t::flaky"].flaky_rate == 1.0


def test_judge_without_a_history_sees_reruns_only() -> None:
    tonight = run("n-04", cell("3.13-slim", (case("t::a", flaky=True), case("t::b", "failed"))))
    judged = judge(tonight, None)
    assert [f.test for f in judged.flaky] == ["t::a"]
    assert {(v.test, v.verdict) for v in judged.verdicts} == {
        ("t::a", Verdict.FLAKY), ("t::b", Verdict.NEW_FAILURE)}


def test_slowdowns_against_cells_and_history(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        for n in range(1, 6):
            history.record(run(f"n-{n:02d}", cell("3.13-slim", (
                case("t::steady", time=1.0), case("t::slow", time=1.0)))), META)
        tonight = run("n-06", cell("3.13-slim", (case("t::steady", time=1.1),
                                                 case("t::slow", time=2.6))),
                      cell("3.12-slim", (case("t::steady", time=0.2),)))
        found = slowdowns(tonight, history)
    assert [(s.test, s.cell, s.against) for s in found] == [
        ("t::steady", "3.13-slim", Against.CELL), ("t::slow", "3.13-slim", Against.HISTORY)]
    assert slowdowns(tonight, None)[0].against is Against.CELL


def test_quarantine_reads_the_recent_history(tmp_path: Path) -> None:
    entries = parse_quarantine([{"test": "t::net*", "until": "2027-01-31"}])
    with History.open(tmp_path / "h.db") as history:
        for n in range(1, 5):
            history.record(run(f"n-{n:02d}", cell("3.13-slim", (case("t::network"),))), META)
        tonight = run("n-05", cell("3.13-slim", (case("t::network"),)))
        report = quarantine(tonight, entries, history, today=dt.date(2026, 11, 28))
        assert [r.entry.test for r in report.removable] == ["t::net*"]
        failing = replace(tonight, cells=(cell("3.13-slim", (case("t::network", "failed"),)),))
        report = quarantine(failing, entries, history, today=dt.date(2026, 11, 28))
        assert report.removable == ()
        assert report.released_cells == ("3.13-slim",)


def test_a_cell_that_failed_as_a_whole_is_an_incident_not_verdicts(tmp_path: Path) -> None:
    keys = [f"t::test_{i}" for i in range(12)]
    with History.open(tmp_path / "h.db") as history:
        history.record(run("n-01", cell("3.13-slim", tuple(case(k) for k in keys)),
                           cell("3.12-slim", tuple(case(k) for k in keys))), META)
        tonight = run("n-02", cell("3.13-slim", tuple(case(k, "error") for k in keys)),
                      cell("3.12-slim", (*(case(k) for k in keys[1:]),
                                         case(keys[0], "failed"))))
        judged = judge(tonight, history, limit=1)
    assert judged.incidents == ("3.13-slim",)
    assert [(v.test, v.cell, v.verdict) for v in judged.verdicts] == \
        [("t::test_0", "3.12-slim", Verdict.FLAKY)]
