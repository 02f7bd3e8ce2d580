"""Every history verdict compares a run with earlier runs of its own branch and profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator.config import Config, load_config
from orchestrator.history.flaky import Verdict
from orchestrator.history.records import RunMeta, Scope
from orchestrator.history.store import History
from orchestrator.insights import Insights
from orchestrator.nightly import prepare, remember
from orchestrator.reports import nightly as nightly_report
from orchestrator.results import RunResult

from .history_helpers import PROJECT, case, cell, run

FEATURE = "sha256:" + "f" * 64  # the project as the feature branch has it
MATRIX = 'matrix:\n  python: ["3.12", "3.13"]\n  variant: [slim]\n'


def _config(tmp_path: Path) -> Config:
    (tmp_path / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    return load_config(tmp_path / "matrix.yaml")


def _night(run_id: str, outcome: str, *, project: str = PROJECT, slow: float = 0.2,
           profile: str | None = None) -> RunResult:
    tests = (case("t::x", outcome), case("t::slow", time=slow),
             *(case(f"t::n{i}", time=0.05) for i in range(6)))
    return run(run_id, cell("3.12-slim", tests, project=project),
               cell("3.13-slim", tests, project=project), profile=profile)


def _remember(config: Config, night: RunResult, branch: str | None) -> Insights:
    plan, _ = prepare(config, path=config.history.file(config.file))
    plan = replace(plan, meta=replace(plan.meta, git_branch=branch))
    done = remember(night, config, plan, None)
    assert done.insights is not None
    return done.insights


def test_a_feature_branch_failure_is_no_verdict_on_main(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _remember(config, _night("n-01", "passed"), "main")
    feature = _remember(config, _night("n-02", "failed", project=FEATURE), "feature")
    # the branch's first run: nothing of its own to compare with (main's run is not it)
    assert {(v.cell, v.verdict) for v in feature.verdicts} == \
        {("3.12-slim", Verdict.NEW_FAILURE), ("3.13-slim", Verdict.NEW_FAILURE)}
    main = _remember(config, _night("n-03", "passed"), "main")
    # it never failed on main: compared with main's n-01, not with the feature branch
    assert main.verdicts == ()
    assert main.flaky == ()
    note = main.history
    assert note is not None
    assert (note.scope, note.compared, note.previous, note.left_out) == \
        ("branch main, no profile", 1, "n-01", 1)
    assert [p.run_id for _, points in note.strips for p in points][:2] == ["n-01", "n-03"]
    lines = [text for _, text in nightly_report._history(main)]
    assert "compared with the 1 earlier run(s) of branch main, no profile (the latest: " \
           "n-01); 1 run(s) of another branch, matrix file or profile left out" in lines


def test_flakiness_is_counted_on_the_runs_own_branch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    for night, (branch, outcome) in enumerate([("main", "passed"), ("feature", "failed"),
                                               ("feature", "passed"), ("feature", "failed"),
                                               ("main", "passed")], start=1):
        found = _remember(config, _night(f"n-{night:02d}", outcome), branch)
    # three flips on feature (nothing changed there): flaky there, not on main
    assert found.flaky == ()
    on_feature = _remember(config, _night("n-06", "passed"), "feature")
    assert [(f.test, f.flips) for f in on_feature.flaky] == [("t::x", 6)]


def test_the_history_baseline_of_slowdowns_is_the_same_branch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    for night in range(1, 4):  # main: t::slow takes 0.2 s
        _remember(config, _night(f"n-{night:02d}", "passed"), "main")
    for night in range(4, 7):  # a feature that made it 2 s
        _remember(config, _night(f"n-{night:02d}", "passed", slow=2.0), "feature")
    on_main = _remember(config, _night("n-07", "passed", slow=0.2), "main")
    assert on_main.slowdowns == ()  # the feature's 2 s are not main's baseline
    regressed = _remember(config, _night("n-08", "passed", slow=2.0), "main")
    assert {(s.test, s.against.value, s.runs) for s in regressed.slowdowns} == \
        {("t::slow", "history", 4)}


def test_the_profile_is_part_of_the_scope(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _remember(config, _night("n-01", "passed", profile="pr"), "main")
    found = _remember(config, _night("n-02", "failed"), "main")  # config.profile: None
    assert [v.verdict for v in found.verdicts] == [Verdict.NEW_FAILURE] * 2


def test_without_a_branch_the_matrix_file_is_the_scope(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db") as history:
        history.record(_night("n-01", "passed"), RunMeta(matrix_hash="m1"))
        history.record(_night("n-02", "passed"), RunMeta(matrix_hash="m2"))
        history.record(_night("n-03", "passed"), RunMeta(matrix_hash="m1", git_branch="x"))
        scope = Scope(profile=None, branch=None, matrix_hash="m1")
        assert history.scoped(scope) == (["n-03", "n-01"], 1)
        assert [r.run_id for r in history.runs(scope=scope)] == ["n-01", "n-03"]
        assert [r.run_id for r in history.runs(scope=scope, before="n-03")] == ["n-01"]
