"""A run and its history, without Docker: prepare (refusals, --baseline auto), remember
(insights, recording, read-only and cancelled runs), the gates, results.json round trips."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.compare import compare
from orchestrator.config import Config, load_config
from orchestrator.errors import ConfigError, UsageError
from orchestrator.gates import evaluate, parse_fail_on
from orchestrator.history.errors import HistoryError
from orchestrator.history.store import History
from orchestrator.insights import Check, Exemption
from orchestrator.nightly import checkout, prepare, remember
from orchestrator.reportio import write_reports
from orchestrator.reports import nightly_html, summary
from orchestrator.results import Gate, RunResult, Status
from orchestrator.warnings_ledger import WarningRecord

from .history_helpers import case, cell, run

MATRIX = """\
matrix:
  python: ["3.12", "3.13"]
  variant: [slim]
"""


def _config(tmp_path: Path, extra: str = "") -> Config:
    (tmp_path / "matrix.yaml").write_text(MATRIX + extra, encoding="utf-8")
    return load_config(tmp_path / "matrix.yaml")


def _night(run_id: str, flaky_outcome: str, *, minutes: float = 0.0) -> RunResult:
    return run(run_id, cell("3.12-slim", (case("t::flaky", flaky_outcome), case("t::ok"))),
               cell("3.13-slim", (case("t::flaky"), case("t::ok", time=0.2 + minutes))),
               profile=None)  # as config.profile: no --profile


def _remember(config: Config, night: RunResult, fail_on: list[str] | None = None,
              baseline: RunResult | None = None) -> RunResult:
    """What run.execute does with a run's cells: its gate, the comparison, the history."""
    gate, checks = parse_fail_on(fail_on)
    plan, _ = prepare(config, path=config.history.file(config.file), gate=gate,
                      checks=checks)
    night = replace(night, gate=gate)
    if baseline is not None:
        night = compare(night, baseline)
    return remember(night, config, plan, baseline)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_is_recorded_with_its_insights_and_strips(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _remember(config, _night("n-01", "passed"))
    second = _remember(config, _night("n-02", "passed"))
    assert second.insights is not None
    note = second.insights.history
    assert note is not None
    assert (note.recorded, note.seq, note.runs, note.problem) == (True, 2, 2, "")
    assert note.path == str(tmp_path / ".tagmatrix" / "history.db")
    assert [(c, [p.status for p in points]) for c, points in note.strips] == [
        ("3.12-slim", ["passed", "passed"]), ("3.13-slim", ["passed", "passed"])]
    assert first.insights is not None
    assert first.insights.history is not None
    with History.open(tmp_path / ".tagmatrix" / "history.db", readonly=True) as history:
        assert [r.run_id for r in history.runs()] == ["n-01", "n-02"]


def test_a_flaky_test_stops_gating_regressions_once_the_history_knows_it(
        tmp_path: Path) -> None:
    config = _config(tmp_path)
    previous: RunResult | None = None
    outcomes = []
    for night, outcome in enumerate(("passed", "failed", "passed", "failed"), start=1):
        done = _remember(config, _night(f"n-{night:02d}", outcome), ["regressions"], previous)
        outcomes.append(not done.gate_passed)
        previous = done
    # night 2: the first flip, unknown before: a regression; night 4: known flaky
    assert outcomes == [False, True, False, False]
    assert previous is not None
    assert previous.insights is not None
    [held] = previous.insights.held
    assert (held.test, held.cell, held.kind) == ("t::flaky", "3.12-slim", Exemption.FLAKY)
    assert held.why == "flaky in 2 of the last 3 runs"
    assert "not gating: flaky in 2 of the last 3 runs" in summary.markdown(previous)
    assert summary.verdict_line(previous).startswith(
        "OK: no new failures that gate (1 new failure(s) not gating: known flaky or "
        "quarantined; 1 still failing")
    [flaky] = previous.insights.flaky
    assert (flaky.test, flaky.flips) == ("t::flaky", 3)
    # with --fail-on failures a failing flaky test still fails the run
    assert not replace(previous, gate=Gate.FAILURES).gate_passed
    # `tagmatrix report` renders it again and exits as the run did (its gates are kept)
    write_reports(previous, tmp_path / "reports", step_summary=False)
    assert main(["report", "--reports", str(tmp_path / "reports")]) == 0


def test_quarantine_keeps_a_failure_from_gating_and_says_so(tmp_path: Path) -> None:
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    config = _config(tmp_path, f'quarantine:\n  - {{test: "t::fla*", until: {until}, '
                               f'reason: "issue 7"}}\n  - {{test: "t::gone", until: 2020-01-01}}\n')
    done = _remember(config, _night("n-01", "failed"))
    assert done.cells[0].quarantined == ("t::flaky",)
    assert done.cells[0].status is Status.FAILED
    assert done.cells[0].released
    assert done.ok
    assert done.gate_passed
    assert done.insights is not None
    assert [e.why for e in done.insights.held] == [f"quarantined until {until} (issue 7)"]
    assert done.insights.expired == \
        ("quarantine[1] t::gone until 2020-01-01: expired, quarantines nothing",)


def test_slowdowns_gate_only_when_asked(tmp_path: Path) -> None:
    config = _config(tmp_path, "slowdown: {ratio: 2.0, min_seconds: 0.5}\n")
    slow = _night("n-01", "passed", minutes=1.0)  # t::ok: 0.01 s on 3.12, 1.2 s on 3.13
    plain = _remember(config, slow)
    assert plain.gate_passed
    assert plain.insights is not None
    [found] = plain.insights.slowdowns
    assert found.describe() == ("t::ok: 3.13-slim takes 120.0\N{MULTIPLICATION SIGN} as long "
                                "as 3.12-slim (10 ms → 1.2 s)")
    gated = _remember(config, replace(slow, run_id="n-02"), ["failures,slowdowns"])
    assert not gated.gate_passed
    assert [(r.name, r.failed) for r in evaluate(gated)] == [("failures", False),
                                                             ("slowdowns", True)]
    assert summary.verdict_line(gated).startswith("FAILED: 1 finding(s) of --fail-on "
                                                  "slowdowns; 2 cells (2 passed)")


def _with_warning(night: RunResult, *messages: str) -> RunResult:
    records = tuple(WarningRecord(category="DeprecationWarning", message=m, filename="m.py",
                                  lineno=1, count=1, tests=("t::ok",)) for m in messages)
    return replace(night, cells=tuple(replace(c, warnings=records) for c in night.cells))


def test_new_warnings_are_those_the_baseline_did_not_have(tmp_path: Path) -> None:
    config = _config(tmp_path)
    gates = ["new-warnings"]
    first = _remember(config, _with_warning(_night("n-01", "passed"), "old"), gates)
    assert first.insights is not None
    assert first.insights.new_warnings is None
    second = _remember(config, _with_warning(_night("n-02", "passed"), "old", "new"), gates,
                       first)
    assert second.insights is not None
    assert second.insights.new_warnings == ("DeprecationWarning: new (m.py:1)",)
    assert not second.gate_passed


def test_results_json_round_trips_and_renders_the_same(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _remember(config, _night("n-01", "passed"))
    done = _remember(config, _with_warning(_night("n-02", "failed", minutes=1.0), "w"),
                     ["regressions", "slowdowns"])
    back = RunResult.from_json(done.to_json())
    assert back.insights == done.insights
    assert back.to_json() == done.to_json()
    assert summary.markdown(replace(back, cells=done.cells)) == summary.markdown(done)
    page = nightly_html.render(done)
    assert 'id="slow-ratio" checked' in page
    assert page.count('<tbody class="by-') == 4


def test_a_damaged_history_is_refused_before_the_run_and_left_alone(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = config.history.file(config.file)
    path.parent.mkdir()
    with sqlite3.connect(path) as db:  # another program's database
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()
    before = _digest(path)
    with pytest.raises(HistoryError, match="another program") as caught:
        prepare(config, path=path)
    assert caught.value.exit_code == 2
    assert _digest(path) == before


def test_an_unwritable_history_is_a_note_and_the_run_goes_on(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = Path("/sys/tagmatrix-nightly-test/history.db")  # mkdir: EPERM, even for root
    plan, _ = prepare(config, path=path)
    assert "cannot create" in plan.problem
    done = remember(_night("n-01", "passed"), config, plan, None)
    assert done.insights is not None
    assert done.insights.history is not None
    assert not done.insights.history.recorded
    assert "history not written: " in summary.markdown(done)


def test_a_cancelled_run_is_recorded_as_such_and_is_no_baseline(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _remember(config, _night("n-01", "passed"))
    night = _night("n-02", "passed")
    cancelled = replace(night, cancelled="SIGINT", cells=(
        night.cells[0], replace(night.cells[1], status=Status.CANCELLED, cases=(),
                                failing_tests=())))
    _remember(config, cancelled)
    plan, baseline = prepare(config, path=config.history.file(config.file),
                             auto_baseline=True)
    assert baseline is not None
    assert baseline.run_id == "n-01"
    assert plan.baseline == "n-01"
    with History.open(config.history.file(config.file), readonly=True) as history:
        last = history.runs()[-1]
    assert (last.run_id, last.cancelled, [c.status for c in last.cells]) == \
        ("n-02", "SIGINT", [Status.PASSED, Status.CANCELLED])


def test_gates_parse_and_refuse_contradictions() -> None:
    assert parse_fail_on(None) == (Gate.FAILURES, ())
    assert parse_fail_on(["slowdowns", "new-warnings,slowdowns"]) == \
        (Gate.FAILURES, (Check.SLOWDOWNS, Check.NEW_WARNINGS))
    assert parse_fail_on(["regressions"]) == (Gate.REGRESSIONS, ())
    with pytest.raises(UsageError, match="exclude each other"):
        parse_fail_on(["failures,regressions"])
    with pytest.raises(UsageError, match="not one of failures, regressions"):
        parse_fail_on(["regresions"])


def test_a_detached_checkout_takes_its_branch_from_ci(tmp_path: Path) -> None:
    assert checkout(tmp_path, {"GITHUB_HEAD_REF": "feature/x"}).branch == "feature/x"
    assert checkout(tmp_path, {"GITHUB_HEAD_REF": "", "CI_COMMIT_REF_NAME": "main"}).branch \
        == "main"
    assert checkout(tmp_path, {"GITHUB_REF_NAME": "bad\nname"}).branch is None


def test_history_settings_errors_name_file_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, 'quarantine:\n  - {test: "t::x", until: next week}\n')
    assert str(caught.value).startswith(
        f"{tmp_path / 'matrix.yaml'}:5:27: quarantine[0].until: 'next week' is not a date")
    with pytest.raises(ConfigError, match=r":5:42: slowdown.min_history: cannot exceed"):
        _config(tmp_path, "history: {keep: 30}\nslowdown: {history_runs: 2, min_history: 3}\n")
    with pytest.raises(ConfigError, match=r"history.keep: must be at least 1"):
        _config(tmp_path, "history: {keep: 0}\n")
    with pytest.raises(ConfigError, match=r"history.keep: .*10000"):
        _config(tmp_path, "history: {keep: 2000000000}\n")
    config = _config(tmp_path, "history: {keep: 30, path: ci/history.db}\n")
    assert (config.history.keep, config.history.file(config.file)) == \
        (30, tmp_path / "ci" / "history.db")


def test_the_history_command_shows_runs_cells_and_tests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    for night, outcome in enumerate(("passed", "failed", "passed"), start=1):
        _remember(config, _night(f"n-{night:02d}", outcome))
    matrix = str(tmp_path / "matrix.yaml")
    assert main(["history", "-f", matrix]) == 0
    assert "the last 3 of 3 runs" in capsys.readouterr().out
    assert main(["history", "-f", matrix, "--cell", "3.12-*"]) == 0
    assert "3.12-slim  ✓✗✓" in capsys.readouterr().out
    assert main(["history", "-f", matrix, "--test", "flaky", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["test"] for t in data["tests"]] == ["t::flaky"]
    assert [p["outcome"] for p in data["tests"][0]["points"] if p["cell"] == "3.12-slim"] == \
        ["passed", "failed", "passed"]
    assert main(["history", "--history", str(tmp_path / "none.db")]) == 2
    assert "no history here yet" in capsys.readouterr().err


def test_github_annotations_say_what_does_not_gate_and_which_gate_failed() -> None:
    from orchestrator.reports.github import commands
    from tests.fixtures import history_run

    lines = commands(history_run(), token="t")
    assert "::warning title=not gating in 3.13-slim::tests.test_a::test_two: flaky in 3 of " \
           "the last 7 runs" in lines
    assert [line.split("::")[1] for line in lines if "--fail-on" in line] == \
        ["error title=tagmatrix --fail-on slowdowns"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--fail-on", "new-warnings"], "--fail-on new-warnings needs --baseline RESULTS_JSON"),
    (["--fail-on", "regressions"], "--fail-on regressions needs --baseline RESULTS_JSON"),
    (["--baseline", "auto", "--no-history"], "--baseline auto reads the run history"),
    (["--fail-on", "failures,regressions"], "exclude each other"),
    (["--fail-on", "speed"], "--fail-on 'speed': not one of failures, regressions, "
                             "slowdowns, new-warnings"),
])
def test_run_refuses_gates_it_cannot_decide_before_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    _config(tmp_path)
    assert main(["run", "-f", str(tmp_path / "matrix.yaml"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / ".tagmatrix").exists()  # refused before the history was touched


def test_a_bug_in_the_analyses_costs_the_run_nothing_but_its_insights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.nightly

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(orchestrator.nightly, "_insights", broken)
    night = _night("n-01", "passed")
    assert _remember(_config(tmp_path), night) == night
