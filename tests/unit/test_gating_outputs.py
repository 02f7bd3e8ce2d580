"""GitHub Actions commands, progress output, the CI examples and the dependency lock."""

from __future__ import annotations

import io
import re
import shlex
from importlib import metadata

import pytest
import yaml
from rich.console import Console

from orchestrator.compare import compare
from orchestrator.parser import build_parser
from orchestrator.progress import LiveProgress, PlainProgress
from orchestrator.reports.github import commands
from orchestrator.reports.summary import markdown
from orchestrator.results import CellResult, RunResult, Status
from tests.conftest import REPO
from tests.fixtures import sample_run


def test_github_commands_group_each_cell_and_annotate_failures() -> None:
    run = sample_run()
    lines = commands(run, token="tok")
    assert "::group::tagmatrix 3.12-slim: passed" in lines
    assert lines.count("::stop-commands::tok") == lines.count("::tok::") == 5
    errors = [line for line in lines if line.startswith("::error")]
    assert errors == [
        "::error title=tagmatrix 3.12-alpine error::127.0.0.1:5000/library/python:3.12-alpine: "
        "tag not found",
        "::error title=tagmatrix 3.13-slim failed::exit code 1; 1 failed, 0 errors",
        "::error title=tagmatrix 3.13-alpine timeout::exceeded the 30 s timeout; container "
        "killed"]  # 3.15-rc-slim is allowed to fail: no error annotation


def test_a_test_cannot_inject_workflow_commands() -> None:
    cell = CellResult(id="c", python="3.12", variant="slim", status=Status.PASSED,
                      output_tail="::add-mask::x\n::set-env name=A::b\n")
    run = RunResult(run_id="r", started_at="", finished_at="", duration_s=0, cells=(cell,))
    lines = commands(run, token="t0k")
    start, end = lines.index("::stop-commands::t0k"), lines.index("::t0k::")
    assert lines[start + 1:end] == ["::add-mask::x", "::set-env name=A::b"]


def test_annotation_data_is_escaped() -> None:
    cell = CellResult(id="c", python="3.12", variant="slim", status=Status.ERROR,
                      reason="line 1\nline 2 at 100%")
    run = RunResult(run_id="r", started_at="", finished_at="", duration_s=0, cells=(cell,))
    assert "::error title=tagmatrix c error::line 1%0Aline 2 at 100%25" in commands(run)


def test_regressions_and_unexpected_passes_reach_every_output() -> None:
    before = RunResult(run_id="last-night", started_at="", finished_at="", duration_s=0, cells=(
        CellResult(id="a", python="3.12", variant="slim", status=Status.PASSED),
        CellResult(id="rc", python="3.15-rc", variant="slim", status=Status.FAILED,
                   gating=False)))
    after = compare(RunResult(run_id="tonight", started_at="", finished_at="", duration_s=0,
                              cells=(CellResult(id="a", python="3.12", variant="slim",
                                                status=Status.FAILED, failing_tests=("t::x",)),
                                     CellResult(id="rc", python="3.15-rc", variant="slim",
                                                status=Status.PASSED, gating=False))), before)
    text = markdown(after)
    assert "### Compared with baseline last-night" in text
    assert "- **new failure**: a: new failure; base image unchanged" in text
    assert "- **new failure**: a: t::x: new failure" in text
    assert "- **unexpected pass**: rc now passes although it is allowed to fail" in text
    lines = commands(after)
    assert any(line.startswith("::error title=new failure in a::t::x") for line in lines)
    assert any(line.startswith("::notice title=rc passes::") for line in lines)


def test_plain_progress_has_no_control_codes() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    for state in ("queued", "building", "running", "failed"):
        progress("3.12-slim", state, "exit code 1")
    out = stream.getvalue()
    assert "\x1b" not in out
    assert len(out.splitlines()) == 4
    assert out.splitlines()[-1].endswith("failed  exit code 1")
    quiet = io.StringIO()
    progress = PlainProgress(quiet, quiet=True)
    progress("c", "running", "")
    progress("c", "passed", "")
    assert len(quiet.getvalue().splitlines()) == 1


def test_live_progress_table() -> None:
    console = Console(record=True, width=100, height=30, force_terminal=True)
    live = LiveProgress(console)
    live("3.12-slim", "running", "")
    live("3.13-slim", "retrying", "attempt 2 in 1.0 s")
    live("3.11-slim", "failed", "exit code 1")
    console.print(live._render())
    text = console.export_text()
    assert re.search(r"3\.12-slim\s+running", text)
    assert re.search(r"3\.13-slim\s+retrying\s+\S*\s+2", text)
    assert "exit code 1" in text
    assert "1 failed" in text


CI = REPO / "examples" / "ci"


def _tagmatrix_commands(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith(("#", "//")):
            continue  # comments describe, they do not run
        for match in re.finditer(r"(?:^|\s|')(?:\.venv/bin/)?tagmatrix ([^'\n]+)", line):
            found.append(shlex.split(match.group(1)))
    return found


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml", "Jenkinsfile"])
def test_ci_examples_use_real_tagmatrix_commands(name: str) -> None:
    text = (CI / name).read_text()
    if name.endswith(".yml"):
        assert isinstance(yaml.safe_load(text), dict)
    calls = _tagmatrix_commands(text)
    assert calls, "the example runs tagmatrix"
    parser = build_parser()
    for argv in calls:
        args = parser.parse_args(argv)  # exits on an unknown command or flag
        assert args.command in ("run", "history")
    assert "requirements.lock" in text  # installs exactly the verified dependencies
    if name == "gitlab-ci.yml":
        assert yaml.safe_load(text)["tagmatrix"]["artifacts"]["reports"]["junit"] == \
            "reports/junit.xml"
    if name == "Jenkinsfile":
        assert "junit testResults: 'reports/junit.xml'" in text


def test_requirements_lock_pins_every_runtime_dependency_with_hashes() -> None:
    # the installed distribution's runtime requirements (pyproject's dependencies) for
    # this interpreter: the lock is resolved for the CPython the tests run on
    from packaging.requirements import Requirement

    markers = {r: Requirement(r).marker for r in metadata.requires("tagmatrix") or []}
    runtime = [r for r, marker in markers.items()
               if "extra ==" not in r and (marker is None or marker.evaluate())]
    wanted = {re.split(r"[<>=!~\[ ;(]", r, maxsplit=1)[0].lower().replace("_", "-")
              for r in runtime}
    assert "docker" in wanted
    text = (REPO / "requirements.lock").read_text()
    pinned = {}
    for block in re.split(r"\n(?=[A-Za-z])", text):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            pinned[match.group(1).lower()] = block
    assert wanted <= set(pinned), wanted - set(pinned)
    for name, block in pinned.items():
        assert "--hash=sha256:" in block, name
