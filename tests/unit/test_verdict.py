"""Judging a finished container: exit code, JUnit, and the interpreter it proves it ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.containerrecords import Interpreter
from orchestrator.engine import Execution
from orchestrator.errors import Stage
from orchestrator.plan import Job, make_plan
from orchestrator.results import Status
from orchestrator.tags import Catalogue
from orchestrator.verdict import classify

Write = Callable[[str, str], Path]
PASS_XML = (b'<testsuite><testcase classname="t" name="a"/>'
            b'<testcase classname="t" name="b"/></testsuite>')
FAIL_XML = (b'<testsuite><testcase classname="t" name="a"><failure message="no"/></testcase>'
            b'</testsuite>')


def jobs(write: Write, matrix: str) -> list[Job]:
    return list(make_plan(load_config(write("matrix.yaml", matrix)), Catalogue.builtin()).jobs)


@pytest.mark.parametrize(("execution", "status", "needle"), [
    (Execution(exit_code=0, junit=PASS_XML), Status.PASSED, ""),
    (Execution(exit_code=1, junit=FAIL_XML), Status.FAILED, "1 failed"),
    (Execution(exit_code=0, junit=FAIL_XML), Status.FAILED, "although the command exited 0"),
    (Execution(exit_code=None, timed_out=True), Status.TIMEOUT, "timeout"),
    (Execution(exit_code=137), Status.ERROR, "SIGKILL"),
    (Execution(exit_code=137, oom_killed=True), Status.ERROR, "out of memory"),
    (Execution(exit_code=0, junit=b"<html/>"), Status.ERROR, "results"),
    (Execution(exit_code=0, junit=None, junit_error="no file"), Status.ERROR, "results missing"),
    (Execution(exit_code=2, junit=None), Status.FAILED, "exit code 2"),
    (Execution(exit_code=5, junit=b"<testsuite/>"), Status.FAILED, "no tests were collected"),
    (Execution(exit_code=4, junit=None, junit_error="no JUnit file"), Status.FAILED,
     "exit code 4 (pytest could not start: a usage error, or a conftest that does not import)"),
    (Execution(exit_code=252, setup_failed=True), Status.ERROR, "setup"),
])
def test_classify(write: Write, execution: Execution, status: Status, needle: str) -> None:
    job = jobs(write, 'matrix: {python: ["3.12"]}\n')[0]
    verdict = classify(job, replace(execution, interpreter=Interpreter(version="3.12.1")))
    assert verdict.status is status
    assert needle in verdict.reason


@pytest.mark.parametrize(("python", "ran", "needle"), [
    ("3.13", "3.12.1", "the image ran Python 3.12.1, but this cell is 3.13"),
    ("3.15-rc", "3.15.0", "a final release"),
    ("3.13", "", "reported no usable version"),
])
def test_a_cell_that_ran_another_interpreter_is_an_error_never_a_pass(
        write: Write, python: str, ran: str, needle: str) -> None:
    job = jobs(write, f'matrix: {{python: ["{python}"]}}\n')[0]
    for code, junit in ((0, PASS_XML), (1, FAIL_XML)):
        verdict = classify(job, Execution(exit_code=code, junit=junit,
                                          interpreter=Interpreter(version=ran)))
        assert verdict.status is Status.ERROR
        assert verdict.stage is Stage.RESULTS
        assert needle in verdict.reason


def test_a_hard_coded_from_is_named_in_the_reason(write: Write) -> None:
    write("Dockerfile", "FROM 127.0.0.1:5000/library/python:3.12-slim\n")
    job = jobs(write, 'matrix: {python: ["3.13"]}\nbuild: {dockerfile: Dockerfile}\n')[0]
    verdict = classify(job, Execution(exit_code=0, junit=PASS_XML,
                                      interpreter=Interpreter(version="3.12.1")))
    assert verdict.status is Status.ERROR
    assert verdict.reason == ("the image ran Python 3.12.1, but this cell is 3.13: does "
                              "Dockerfile's FROM use PYTHON_IMAGE (ARG PYTHON_IMAGE, "
                              "FROM ${PYTHON_IMAGE})?")


FORGED = ("3.13.0| ![p](http://evil.example/p.png) <img src=x> [link=x]rich[/link] "
          "\x1b[31mRED\n::error title=injected::from interpreter.json")


def test_a_forged_interpreter_record_reaches_no_report_and_proves_nothing(
        write: Write) -> None:
    record = {"version": FORGED, "implementation": "CPython\n::warning::x",
              "executable": "/usr/bin/python\x1b]0;title\x07"}
    forged = Interpreter.from_record(record)
    assert forged == Interpreter()  # nothing of that shape is kept
    job = jobs(write, 'matrix: {python: ["3.13"]}\n')[0]
    verdict = classify(job, Execution(exit_code=0, junit=PASS_XML, interpreter=forged))
    assert verdict.status is Status.ERROR
    assert "reported no usable version" in verdict.reason
    kept = Interpreter.from_record({"version": "3.15.0b3", "implementation": "CPython",
                                    "executable": "/usr/local/bin/python3.15"})
    assert kept.version == "3.15.0b3"
    assert kept.executable == "/usr/local/bin/python3.15"


def test_another_implementation_under_an_official_tag_is_an_error(write: Write) -> None:
    job = jobs(write, 'matrix: {python: ["3.12"]}\n')[0]
    verdict = classify(job, Execution(exit_code=0, junit=PASS_XML, interpreter=Interpreter(
        version="3.12.1", implementation="PyPy")))
    assert verdict.status is Status.ERROR
    assert "the image ran PyPy" in verdict.reason


@pytest.mark.parametrize("case", [
    # pytest exit 4: the error line, wherever stdout and stderr put "no tests ran"
    ("python -m pytest -q testz", 4,
     "ERROR: file or directory not found: testz\n\nno tests ran in 0.00s\n",
     Status.FAILED, "it said: ERROR: file or directory not found: testz"),
    ("python -m pytest -q testz", 4,
     "no tests ran in 0.00s\nERROR: file or directory not found: testz\n",
     Status.FAILED, "it said: ERROR: file or directory not found: testz"),
    ("python -m pytest -q", 1,
     "Traceback (most recent call last):\n  File x\nModuleNotFoundError: No module named "
     "'yaml'\nsome teardown noise\n", Status.FAILED,
     "it said: ModuleNotFoundError: No module named 'yaml'"),
    # the test command cannot start: the cell's error, pointing at test.command
    ("python -m pytset", 1, "/usr/local/bin/python: No module named pytset\n", Status.ERROR,
     "the test command did not start: /usr/local/bin/python: No module named pytset"),
    ("tox -e py", 127, "tagmatrix: cannot run 'tox': [Errno 2] No such file or directory\n",
     Status.ERROR, "check test.command"),
    ("python -m pytest -q", 3, "", Status.FAILED, "exit code 3 (pytest's internal error)"),
])
def test_a_failure_without_results_says_why(
        write: Write, case: tuple[str, int, str, Status, str]) -> None:
    from orchestrator.verdict import without_results

    command, code, output, status, needle = case
    job = jobs(write, f'matrix: {{python: ["3.12"]}}\ntest: {{command: {command}}}\n')[0]
    verdict = classify(job, Execution(exit_code=code, junit=None, junit_error="no JUnit file",
                                      interpreter=Interpreter(version="3.12.1")))
    judged = without_results(job, verdict, code, output)
    assert judged.status is status
    assert needle in judged.reason, judged.reason
