"""Hostile input never hangs, crashes or misleads: YAML bombs, crafted results.json,
huge JUnit, long names; and the reports say what decided the exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.changes import Change, Comparison
from orchestrator.cli import main
from orchestrator.junit_in import InvalidResults, parse_junit
from orchestrator.matrix import MAX_ID, cell_id
from orchestrator.reports import html, summary
from orchestrator.results import CellResult, Gate, RunResult, Status, TestCase, TestOutcome
from tests.fixtures import sample_run

OK = 'matrix:\n  python: ["3.12"]\n'


def validate(tmp_path: Path, text: str) -> tuple[int, str, float]:
    """`tagmatrix validate` in a fresh process (a bomb must not take the test down)."""
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "validate", "-f", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stderr, time.monotonic() - started


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n" + OK


@pytest.mark.parametrize(("text", "message"), [
    (billion_laughs(), "more than 200000 values"),
    ("x: &a [*a]\n" + OK, "nested deeper than 64 levels"),
    ("x: " + "[" * 500 + "]" * 500 + "\n" + OK, "nested deeper than 64 levels"),
    ("x: " + "a" * 1_000_000 + "\n" + OK, "a value of 1000000 characters"),
])
def test_yaml_bombs_are_refused_quickly_and_in_one_line(
        tmp_path: Path, text: str, message: str) -> None:
    code, err, seconds = validate(tmp_path, text)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert seconds < 10


def test_special_files_are_never_read(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "matrix.yaml"
    os.mkfifo(fifo)
    assert main(["validate", "-f", str(fifo)]) == 2  # a FIFO would block a read forever
    assert capsys.readouterr().err.count("not a regular file") == 1
    assert main(["validate", "-f", "/dev/zero"]) == 2  # and this one never ends
    assert "a kernel interface under /dev" in capsys.readouterr().err


def test_cell_ids_are_bounded_and_stay_unique() -> None:
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    first = cell_id({"python": "3.12", "variant": "slim", "deps": long_a}, ["deps"])
    second = cell_id({"python": "3.12", "variant": "slim", "deps": long_b}, ["deps"])
    assert len(first) == len(second) == MAX_ID
    assert first != second
    assert cell_id({"python": "3.12", "variant": "slim"}, []) == "3.12-slim"


def test_a_junit_file_past_the_case_cap_is_refused() -> None:
    case = b'<testcase classname="t" name="n%d"/>'
    body = b"<testsuites><testsuite>" + b"".join(case % i for i in range(1001)) + \
        b"</testsuite></testsuites>"
    assert len(parse_junit(body, max_cases=1001)) == 1001
    with pytest.raises(InvalidResults, match="more than 1000 test cases"):
        parse_junit(body, max_cases=1000)


def crafted(tmp_path: Path, cell: dict[str, object]) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "results.json").write_text(json.dumps({
        "run_id": "x", "cells": [{"python": "3.12", "variant": "", "status": "passed",
                                  **cell}]}))
    return reports


@pytest.mark.parametrize("bad_id", ["../../x", "/etc/passwd", ".hidden", "a/b", "x" * 200])
def test_report_refuses_results_whose_cell_ids_are_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_id: str) -> None:
    reports = crafted(tmp_path, {"id": bad_id})
    assert main(["report", "--reports", str(reports)]) == 2
    assert "is not a cell id" in capsys.readouterr().err
    assert not (tmp_path / "x.xml").exists()
    assert sorted(p.name for p in reports.iterdir()) == [".tagmatrix.lock", "results.json"]


def test_report_links_nothing_but_its_own_logs_and_https(tmp_path: Path) -> None:
    reports = crafted(tmp_path, {"id": "3.12", "log": "javascript:alert(1)",
                                 "base_labels": {
                                     "org.opencontainers.image.source": "javascript:alert(2)"}})
    assert main(["report", "--reports", str(reports)]) == 0
    page = (reports / "index.html").read_text()
    assert "javascript:" not in page.replace("javascript:alert(2)</dd>", "")
    assert 'href="javascript' not in page


def test_report_exits_0_once_written_unless_asked_to_gate(tmp_path: Path) -> None:
    from orchestrator.reportio import write_reports

    reports = tmp_path / "r"
    write_reports(sample_run(), reports, step_summary=False)  # a failing run
    assert main(["report", "--reports", str(reports)]) == 0
    assert main(["report", "--reports", str(reports), "--exit-code"]) == 1


def test_parallel_out_of_range_is_a_usage_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "matrix.yaml").write_text(OK)
    assert main(["run", "-f", str(tmp_path / "matrix.yaml"), "--parallel", "100000000"]) == 2
    assert "between 1 and 256" in capsys.readouterr().err


def gate_run(regressed: bool) -> RunResult:
    failing = CellResult(id="a", python="3.12", variant="", status=Status.FAILED,
                         comparison=Comparison(Change.NEW_FAILURE if regressed
                                               else Change.STILL_FAILING))
    return RunResult(run_id="r", started_at="", finished_at="", duration_s=1.0,
                     cells=(failing,), baseline="b", gate=Gate.REGRESSIONS)


def test_the_verdict_says_what_decided_the_exit_code() -> None:
    passed, failed = gate_run(regressed=False), gate_run(regressed=True)
    assert passed.gate_passed
    assert summary.verdict_line(passed).startswith(
        "OK: no new failures (1 still failing, gate passed: regressions)")
    assert not failed.gate_passed
    assert summary.verdict_line(failed).startswith("FAILED: 1 cell(s) with new failures")
    assert 'class="verdict ok"' in html.render(passed)


def test_each_cell_of_a_crossing_has_its_own_colour() -> None:
    base = sample_run()
    latest = replace(base.cells[0], id="3.12-slim-latest", axes={"deps": "latest"})
    minimum = replace(base.cells[2], id="3.12-slim-min", python="3.12", axes={"deps": "min"},
                      gating=False)
    page = html.render(replace(base, cells=(latest, minimum)))
    assert '<a class="passed" href="#cell-3.12-slim-latest"' in page
    assert '<a class="failed" href="#cell-3.12-slim-min"' in page


def test_test_ids_break_at_separators_and_markdown_is_inert() -> None:
    case = TestCase(classname="tests.test_api", name="test_x[https://evil.example/p.png]",
                    outcome=TestOutcome.FAILED,
                    message="see ![pixel](https://evil.example/p.png) and [a](http://x)")
    cell = replace(sample_run().cells[2], cases=(case,))
    page = html.render(replace(sample_run(), cells=(cell,)))
    assert "tests.<wbr>test_api::<wbr>test_x[<wbr>" in page
    text = summary.markdown(replace(sample_run(), cells=(cell,)))
    assert not re.search(r"(?<!\\)!(?<!\\)\[", text)  # no image: "![" only escaped
    assert not re.search(r"(?<!\\)\]\(", text)  # no link: "](" only escaped
    outside_code = re.sub(r"`[^`]*`", "", text.split("### Failing tests")[1])
    assert "https://" not in outside_code  # no bare URL either (code spans stay literal)


def test_no_line_a_test_chose_starts_a_line_of_the_terminal_summary(
        capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from orchestrator.reports.github import fenced

    evil = "boom\n::error title=injected::x \x1b]0;title\x07 [link=https://evil.example]hi[/link]"
    case = TestCase(classname="tests.t", name="test_x\n::warning::named",
                    outcome=TestOutcome.FAILED, message="AssertionError")
    cell = replace(sample_run().cells[2], cases=(case,), node="vm\n::error::node", reason=evil)
    run = replace(sample_run(), cells=(cell,))
    console = Console(width=400, force_terminal=False)
    with fenced(console):
        summary.print_terminal(run, console)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("::stop-commands::")  # under GitHub Actions: all fenced ...
    assert lines[-1] == f"::{lines[0].split('::')[2]}::"
    inside = lines[1:-1]
    assert not [line for line in inside if line.strip().startswith("::")]  # ... and inert
    assert "\x1b" not in out  # escapes shown, never sent to the terminal
    assert "[link=https://evil.example]hi[/link]" in out  # rich markup printed as text
    assert "boom⏎::error title=injected::x #x1B]0;title#x07" in out


def test_a_results_file_read_back_is_bounded_and_never_a_link(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.reportio import write_reports

    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "results.json").write_text("[" * 200_000)  # 400 KB: RecursionError in json
    assert main(["report", "--reports", str(deep)]) == 2
    assert "nested too deeply" in capsys.readouterr().err
    linked = tmp_path / "linked"
    write_reports(sample_run(), linked, step_summary=False)
    (linked / "results.json").rename(tmp_path / "elsewhere.json")
    (linked / "results.json").symlink_to(tmp_path / "elsewhere.json")
    assert main(["report", "--reports", str(linked)]) == 2
    assert "a symbolic link" in capsys.readouterr().err
    (tmp_path / "nl").mkdir()
    newline = crafted(tmp_path / "nl", {"id": "3.12-slim\n"})
    assert main(["report", "--reports", str(newline)]) == 2
    assert "is not a cell id" in capsys.readouterr().err


def test_a_huge_cell_report_read_back_is_skipped_not_loaded(tmp_path: Path) -> None:
    from orchestrator.reportio import CELL_FILE_BYTES, read_back, write_reports

    reports = tmp_path / "r"
    write_reports(sample_run(), reports, step_summary=False)
    cell = sample_run().cells[0].id
    with (reports / "cells" / f"{cell}.xml").open("r+b") as handle:
        handle.truncate(CELL_FILE_BYTES + 1)  # sparse: nothing written to disk
    (back,) = [c for c in read_back(reports).cells if c.id == cell]
    assert back.cases == ()  # refused before a byte was read, the rest still rendered
