"""The run history on real SQLite files: record, prune, query, rebuild a baseline."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.changes import Change
from orchestrator.compare import compare
from orchestrator.errors import Stage
from orchestrator.history.records import RunMeta
from orchestrator.history.schema import APPLICATION_ID, SCHEMA_VERSION
from orchestrator.history.store import History
from orchestrator.results import Attempt, CellResult, Status

from .history_helpers import IMAGE, PROJECT, case, cell, run, simple_run

META = RunMeta(matrix_hash="m1", git_commit="c" * 40, git_branch="main")


def test_a_run_comes_back_with_what_compare_needs(tmp_path: Path) -> None:
    path = tmp_path / ".tagmatrix" / "history.db"
    tries = (Attempt(number=1, status=Status.ERROR, stage=Stage.PULL, reason="429"),
             Attempt(number=2, status=Status.FAILED))
    first = run("night-01", cell("3.12-slim", (case("t::a"), case("t::b", "failed"))),
                cell("3.13-slim", (case("t::a", flaky=True),), attempts=tries))
    meta = replace(META, packages={"3.12-slim": {"attrs": "23.1.0", "pytest": "8.3.1"}})
    with History.open(path) as history:
        recorded = history.record(first, meta)
        assert (recorded.seq, recorded.tests, recorded.pruned) == (1, 3, 0)
        [back] = history.runs()
    assert (path.parent / ".gitignore").read_text(encoding="utf-8").endswith("*\n")
    assert (back.run_id, back.git_branch, back.git_commit, back.matrix_hash, back.profile) == \
        ("night-01", "main", "c" * 40, "m1", "nightly")
    assert back.packages == {"3.12-slim": {"attrs": "23.1.0", "pytest": "8.3.1"}}
    slim12, slim13 = back.cells
    assert slim12.status is Status.FAILED
    assert slim12.failing_tests == ("t::b",)
    assert (slim12.project_digest, slim12.image_digest, slim12.interpreter.version) == \
        (PROJECT, IMAGE, "3.12.1")
    assert slim13.flaky_tests == ("t::a",)
    assert slim13.attempts == tries
    # The rebuilt run is a baseline compare() can use.
    tonight = run("night-02", cell("3.12-slim", (case("t::a", "failed"), case("t::b"))),
                  cell("3.13-slim", (case("t::a"),)))
    compared = compare(tonight, back.to_result())
    assert compared.baseline == "night-01"
    comparison = compared.cells[0].comparison
    assert comparison is not None
    assert comparison.tests_of(Change.NEW_FAILURE) == ("t::a",)


def test_prune_keeps_the_most_recent_runs_and_forgets_their_tests(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        for night in range(1, 6):
            recorded = history.record(
                simple_run(f"n-{night:02d}", {"3.12-slim": {f"t::only_{night}": "passed",
                                                             "t::always": "passed"}}),
                META, keep=3)
        assert recorded.pruned == 1
        assert [r.run_id for r in history.runs(last=None)] == ["n-03", "n-04", "n-05"]
        assert history.test_names() == ["t::always", "t::only_3", "t::only_4", "t::only_5"]
        assert {p.run_id for p in history.test_history("always").points} == \
            {"n-03", "n-04", "n-05"}


def test_recording_a_run_again_replaces_it(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "failed"}}), META)
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed", "t::b": "passed"}}),
                       META)
        [only] = history.runs()
        assert only.cells[0].status is Status.PASSED
        assert [(p.test, p.outcome) for p in history.test_history("t::").points] == \
            [("t::a", "passed"), ("t::b", "passed")]


def test_runs_and_cells_by_glob_oldest_first(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META)
        history.record(simple_run("n-02", {"3.12-slim": {"t::a": "passed"},
                                           "3.13-slim": {"t::a": "failed"}}), META)
        history.record(simple_run("n-03", {"3.12-slim": {"t::a": "passed"}}), META)
        assert [r.run_id for r in history.runs(last=2)] == ["n-02", "n-03"]
        with_313 = history.cell_history("3.13-*")
        assert [(r.run_id, [c.id for c in r.cells]) for r in with_313] == \
            [("n-02", ["3.13-slim"])]
        assert with_313[0].cells[0].status is Status.FAILED


def test_test_history_by_substring(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        for night, outcome in ((1, "passed"), (2, "failed"), (3, "passed")):
            history.record(simple_run(f"n-{night:02d}", {
                "3.12-slim": {"tests.test_io::test_Read_100%": outcome,
                              "tests.x::test_ab": "passed", "tests.x::test_a_b": "skipped"},
                "3.13-slim": {"tests.test_io::test_Read_100%": "passed"}}), META)
        found = history.test_history("read_100%")  # case-insensitive, % is literal
        assert found.tests == ("tests.test_io::test_Read_100%",)
        assert [(p.run_id, p.cell, p.outcome) for p in found.points] == [
            ("n-01", "3.12-slim", "passed"), ("n-01", "3.13-slim", "passed"),
            ("n-02", "3.12-slim", "failed"), ("n-02", "3.13-slim", "passed"),
            ("n-03", "3.12-slim", "passed"), ("n-03", "3.13-slim", "passed")]
        assert history.test_history("test_a_b").tests == ("tests.x::test_a_b",)  # _ literal
        recent = history.test_history("read", last=1, cells="3.12-*")
        assert [(p.run_id, p.cell) for p in recent.points] == [("n-03", "3.12-slim")]
        capped = history.test_history("tests.", max_tests=1)
        assert (len(capped.tests), capped.omitted) == (1, 2)


def test_baseline_is_the_last_complete_run_of_the_branch_and_profile(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META)
        history.record(simple_run("n-02", {"3.12-slim": {"t::a": "passed"}}),
                       replace(META, git_branch="feature"))
        history.record(simple_run("n-03", {"3.12-slim": {"t::a": "passed"}}, profile="pr"),
                       META)
        history.record(simple_run("n-04", {"3.12-slim": {"t::a": "passed"}},
                                  cancelled="SIGINT"), META)
        history.record(simple_run("n-05", {"3.12-slim": {"t::a": "failed"}}), META)

        def pick(**kwargs: str | None) -> str | None:
            args: dict[str, str | None] = {"branch": "main", "matrix_hash": "m1",
                                           "profile": "nightly", **kwargs}
            found = history.baseline(branch=args["branch"], matrix_hash=str(args["matrix_hash"]),
                                     profile=args["profile"], before=args.get("before"))
            return found.run_id if found else None

        assert pick() == "n-05"
        assert pick(before="n-05") == "n-01"  # n-04 cancelled, n-03 another profile
        assert pick(branch="feature") == "n-02"
        assert pick(profile="pr") == "n-03"
        assert pick(branch="gone") is None
    with History.open(tmp_path / "nogit.db") as history:
        no_git = RunMeta(matrix_hash="m1")
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), no_git)
        history.record(simple_run("n-02", {"3.12-slim": {"t::a": "passed"}}),
                       replace(no_git, matrix_hash="m2"))
        found = history.baseline(branch=None, matrix_hash="m1", profile="nightly")
        assert found is not None
        assert found.run_id == "n-01"


def test_flaky_candidates_and_their_observations(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed", "t::b": "passed",
                                                         "t::c": "failed"}}), META)
        history.record(simple_run("n-02", {"3.12-slim": {"t::a": "error", "t::b": "passed",
                                                         "t::c": "failed"}}), META)
        history.record(simple_run("n-03", {"3.12-slim": {"t::a": "passed", "t::b": "passed",
                                                         "t::c": "passed"}}), META)
        assert history.flaky_candidates() == (["t::c", "t::a"], 0)  # most failures first
        assert history.flaky_candidates(limit=1) == (["t::c"], 1)
        assert history.flaky_candidates(last=1) == ([], 0)  # n-03 alone: nothing failed
        assert history.flaky_candidates(before="n-02") == (["t::c"], 0)
        seen = history.observations(["t::a"])
        assert [(o.test, o.run_id, o.outcome) for o in seen] == [
            ("t::a", "n-01", "passed"), ("t::a", "n-02", "error"), ("t::a", "n-03", "passed")]
        assert seen[0].inputs.same_as(seen[1].inputs)
        before = history.observations(["t::b"], before="n-03")
        assert [(o.test, o.run_id) for o in before] == [("t::b", "n-01"), ("t::b", "n-02")]


def test_previous_observations_come_from_each_cells_latest_run(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"},
                                           "3.13-slim": {"t::a": "failed"}}), META)
        history.record(simple_run("n-02", {"3.12-slim": {"t::a": "failed"}}), META)
        seen = history.previous_observations(["3.12-slim", "3.13-slim", "3.14-slim"])
        assert sorted((o.cell, o.run_id, o.outcome) for o in seen) == [
            ("3.12-slim", "n-02", "failed"), ("3.13-slim", "n-01", "failed")]
        assert [o.run_id for o in history.previous_observations(["3.12-slim"],
                                                                before="n-02")] == ["n-01"]


def test_a_cell_that_failed_as_a_whole_is_no_evidence(tmp_path: Path) -> None:
    tests = [f"t::test_{i}" for i in range(12)]
    with History.open(tmp_path / "h.db") as history:
        history.record(simple_run("n-01", {"3.12-slim": dict.fromkeys(tests, "passed")}), META)
        # An import error: every test errors. Then one real failure among passes.
        history.record(simple_run("n-02", {"3.12-slim": dict.fromkeys(tests, "error")}), META)
        history.record(simple_run("n-03", {"3.12-slim": {**dict.fromkeys(tests, "passed"),
                                                         "t::test_5": "failed"}}), META)
        assert history.flaky_candidates() == (["t::test_5"], 0)
        assert [o.run_id for o in history.observations(["t::test_0"])] == ["n-01", "n-03"]
        assert {o.run_id for o in history.previous_observations(["3.12-slim"],
                                                                before="n-03")} == {"n-01"}
        # Shown as it was all the same.
        assert [p.outcome for p in history.test_history("t::test_0").points] == \
            ["passed", "error", "passed"]


def test_durations_of_passing_tests_in_each_cells_recent_runs(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        for night in range(1, 5):
            history.record(run(f"n-{night:02d}", cell("3.12-slim", (
                case("t::slow", time=night * 1.0),
                case("t::broken", "failed" if night == 2 else "passed", time=0.5)))), META)
        times = history.durations(["3.12-slim", "3.13-slim"], runs=3, before="n-04")
        assert times == {("t::slow", "3.12-slim"): [1.0, 2.0, 3.0],
                         ("t::broken", "3.12-slim"): [0.5, 0.5]}


def test_the_file_is_marked_as_ours_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    History.open(path).close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history, pytest.raises(ValueError, match="keep"):
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META, keep=0)


def test_a_huge_test_name_is_kept_short_and_the_same_everywhere(tmp_path: Path) -> None:
    huge = "tests.test_x::test_" + "x" * 100_000
    tonight = run("n-01", cell("3.12-slim", (case(huge, "failed"),)))
    with History.open(tmp_path / "h.db") as history:
        assert history.record(tonight, META).tests == 1  # the case and its failing key agree
        [name] = history.test_names()
        assert len(name) <= 1000
        assert name.startswith("tests.test_x::test_xxx")
        assert history.flaky_candidates() == ([name], 0)
        [seen] = history.observations([name])
        assert seen.test == name


def test_a_run_read_back_from_results_json_keeps_its_failing_tests(tmp_path: Path) -> None:
    reloaded = run("n-01", replace(cell("3.12-slim", (case("t::bad", "failed"),
                                                      case("t::rerun", flaky=True))), cases=()))
    with History.open(tmp_path / "h.db") as history:
        history.record(reloaded, META)
        assert [(p.test, p.outcome, p.rerun) for p in history.test_history("t::").points] == \
            [("t::bad", "failed", False), ("t::rerun", "passed", True)]


@pytest.mark.skipif("packages" not in CellResult.__dataclass_fields__,
                    reason="CellResult.packages comes with main's results.py (installed "
                    "packages per cell); this branch predates it")
def test_a_cells_own_packages_are_kept_and_given_back(tmp_path: Path) -> None:
    changes: dict[str, Any] = {"packages": {"attrs": "24.2.0"}}
    own = replace(cell("3.13-slim", (case("t::a"),)), **changes)
    with History.open(tmp_path / "h.db") as history:
        history.record(run("n-01", own), RunMeta(matrix_hash="m1"))
        [back] = history.runs()
        assert back.packages == {"3.13-slim": {"attrs": "24.2.0"}}
        assert getattr(back.cells[0], "packages", None) == {"attrs": "24.2.0"}
        [seen] = history.observations(["t::a"])
        assert seen.inputs.packages == (("attrs", "24.2.0"),)
