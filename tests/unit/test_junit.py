"""JUnit rendering: matrix-aware, XSD-valid, and junit-xml 1.9's bugs worked around."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import junitparser
import pytest

from orchestrator.containerrecords import Interpreter
from orchestrator.errors import Stage
from orchestrator.reports.junit import escape_visible, render
from orchestrator.results import Attempt, CellResult, Status, TestCase, TestCounts, TestOutcome
from tests.conftest import validate_against_xsd


def cell(cell_id: str = "3.12-slim", *, status: Status = Status.PASSED,
         cases: tuple[TestCase, ...] = (), **extra: object) -> CellResult:
    fields: dict[str, object] = {
        "id": cell_id, "python": cell_id.split("-", maxsplit=1)[0], "variant": "slim",
        "image": f"reg/library/python:{cell_id}", "status": status, "cases": cases,
        "tests": TestCounts.of(cases), "duration_s": 1.5, "run_s": 1.0, "build_s": 0.0,
        "interpreter": Interpreter(version="3.12.1", executable="/usr/local/bin/python")}
    fields.update(extra)
    return CellResult(**fields)  # type: ignore[arg-type]


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - our own output


def test_one_flat_suite_per_cell_and_cell_in_every_classname() -> None:
    cases = (TestCase(classname="tests.test_a", name="test_x"),
             TestCase(classname="tests.test_a", name="test_y", outcome=TestOutcome.FAILED,
                      message="assert 1 == 2", text="trace"))
    xml = render([cell("3.12-slim", cases=cases), cell("3.13-slim", cases=cases,
                                                       status=Status.FAILED)])
    root = parse(xml)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["3.12-slim", "3.13-slim"]
    assert not root.findall("testsuite/testsuite")
    for suite in suites:
        names = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
        assert all(cn and cn.startswith(suite.get("name", "?") + ".") for cn, _ in names)
        assert (f"{suite.get('name')}.tagmatrix", "build") in names
    failure = root.find("testsuite[@name='3.13-slim']/testcase[@name='test_y']/failure")
    assert failure is not None
    assert failure.get("message") == "assert 1 == 2"


def test_counts_are_recomputed_from_the_cases() -> None:
    cases = (TestCase(classname="a", name="t1"),
             TestCase(classname="a", name="t2", outcome=TestOutcome.ERROR, message="boom"),
             TestCase(classname="a", name="t3", outcome=TestOutcome.SKIPPED, message="no"))
    root = parse(render([cell(cases=cases, status=Status.FAILED)]))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures"),
            suite.get("skipped")) == ("6", "1", "0", "1")  # 3 harness + 3 inner
    assert root.get("tests") == "6"
    assert "skipped" not in root.attrib  # not allowed on <testsuites> by junit-10.xsd
    assert "disabled" not in root.attrib
    assert "disabled" not in suite.attrib


def test_junit_xml_bug_failure_without_message_is_not_dropped() -> None:
    # junit-xml 1.9 silently drops add_failure_info() with neither message nor output
    cases = (TestCase(classname="a", name="t", outcome=TestOutcome.FAILED),)
    root = parse(render([cell(cases=cases, status=Status.FAILED)]))
    failure = root.find(".//testcase[@name='t']/failure")
    assert failure is not None
    assert failure.get("message") == "failed"


def test_junit_xml_bug_zero_time_is_kept() -> None:
    # junit-xml 1.9 omits time when elapsed is 0
    root = parse(render([cell(cases=(TestCase(classname="a", name="t", time=0.0),))]))
    assert all(tc.get("time") == f"{float(tc.get('time') or -1):.3f}"
               for tc in root.iter("testcase"))
    testcase = root.find(".//testcase[@name='t']")
    assert testcase is not None
    assert testcase.get("time") == "0.000"


def test_junit_xml_bug_control_characters_are_escaped_not_deleted() -> None:
    # junit-xml 1.9 deletes ESC after serialisation, leaving "[31m" behind
    out = "\x1b[31mred\x1b[0m and a NUL \x00 and BEL \x07"
    cases = (TestCase(classname="a", name="t\x1b", outcome=TestOutcome.FAILED,
                      message="\x1b[1mbold", system_out=out),)
    xml = render([cell(cases=cases, status=Status.FAILED, output_tail=out)])
    text = xml.decode()
    assert "#x1B[31mred#x1B[0m" in text
    assert "#x00" in text
    assert "#x07" in text
    assert "\x1b" not in text
    parse(xml)
    assert escape_visible("tab\tnewline\n") == "tab\tnewline\n"


def test_times_are_plain_decimals() -> None:
    xml = render([cell(duration_s=1e-7, cases=(TestCase(classname="a", name="t", time=1 / 3),))])
    root = parse(xml)
    assert root.get("time") == "0.000"
    assert root.find(".//testcase[@name='t']").get("time") == "0.333"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "stage", "error_case"), [
    (Status.ERROR, Stage.PULL, "build"), (Status.ERROR, Stage.BUILD, "build"),
    (Status.ERROR, Stage.PUSH, "build"),  # a Swarm engine's push is part of the build
    (Status.ERROR, Stage.RUN, "run"), (Status.TIMEOUT, Stage.RUN, "run"),
    (Status.ERROR, Stage.ENGINE, "run"), (Status.ERROR, Stage.RESULTS, "results")])
def test_harness_errors_for_infrastructure(status: Status, stage: Stage,
                                           error_case: str) -> None:
    xml = render([cell(status=status, stage=stage, reason="it broke")])
    root = parse(xml)
    errors = [tc.get("name") for tc in root.iter("testcase") if tc.find("error") is not None]
    assert errors == [error_case]
    assert not list(root.iter("failure"))  # <failure> is left to the tests


def test_system_out_keeps_head_and_tail() -> None:
    output = "HEAD" + "x" * 200_000 + "TAIL"
    root = parse(render([cell(output_tail=output)]))
    text = root.findtext("testsuite/system-out") or ""
    assert text.startswith("HEAD")
    assert text.endswith("TAIL")
    assert "[truncated" in text
    assert len(text) <= 72 * 1024


def test_junitparser_reads_it() -> None:
    cases = (TestCase(classname="tests.t", name="ok"),
             TestCase(classname="tests.t", name="bad", outcome=TestOutcome.FAILED, message="m"))
    xml = render([cell("3.12-slim", cases=cases, status=Status.FAILED),
                  cell("3.13-slim", status=Status.SKIPPED, reason="not published")])
    suites = list(junitparser.JUnitXml.fromstring(xml.decode()))
    assert [(s.name, s.tests, s.failures) for s in suites] == [("3.12-slim", 5, 1),
                                                               ("3.13-slim", 3, 0)]


RETRIED_OK = cell("r1", attempts=(
    Attempt(number=1, status=Status.ERROR, stage=Stage.PULL, reason="toomanyrequests"),
    Attempt(number=2, status=Status.PASSED)))
RETRIED_BAD = cell("r2", status=Status.ERROR, stage=Stage.PULL, reason="429", attempts=(
    Attempt(number=1, status=Status.ERROR, stage=Stage.PULL, reason="429"),
    Attempt(number=2, status=Status.ERROR, stage=Stage.PULL, reason="429")))


def test_attempts_are_in_the_junit() -> None:
    root = parse(render([RETRIED_OK, RETRIED_BAD]))
    ok_build = root.find("testsuite[@name='r1']/testcase[@name='build']")
    assert ok_build is not None
    flaky = ok_build.find("flakyError")
    assert flaky is not None
    assert flaky.get("message") == "attempt 1: toomanyrequests"
    assert ok_build.find("error") is None
    bad_build = root.find("testsuite[@name='r2']/testcase[@name='build']")
    assert bad_build is not None
    assert [e.tag for e in bad_build] == ["error", "rerunError"]
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["attempts"] == "2"


HOSTILE_OUTPUT = "\x1b[31mred\x1b[0m NUL \x00 BEL \x07 C1 \x85 DEL \x7f"
XSD_CASES = {
    "pass-and-fail": [cell("3.12-slim", cases=(
        TestCase(classname="t", name="ok"),
        TestCase(classname="t", name="bad", outcome=TestOutcome.FAILED, message="m", text="tb"),
        TestCase(classname="t", name="err", outcome=TestOutcome.ERROR),
        TestCase(classname="t", name="skip", outcome=TestOutcome.SKIPPED, message="why")),
        status=Status.FAILED)],
    "control-characters": [cell(output_tail=HOSTILE_OUTPUT, cases=(
        TestCase(classname="t\x1b", name="x\x00", outcome=TestOutcome.FAILED,
                 message=HOSTILE_OUTPUT, system_out=HOSTILE_OUTPUT),), status=Status.FAILED)],
    "harness-errors": [cell("a", status=Status.ERROR, stage=Stage.BUILD, reason="boom"),
                       cell("b", status=Status.TIMEOUT, stage=Stage.RUN, reason="slow"),
                       cell("c", status=Status.SKIPPED, reason="not published"),
                       cell("d", status=Status.CANCELLED, reason="SIGINT")],
    "tiny-and-odd-times": [cell(duration_s=1e-9, cases=(
        TestCase(classname="t", name="n", time=1 / 3),
        TestCase(classname="t", name="z", time=0.0)))],
    "no-cells": [],
    "retried": [RETRIED_OK, RETRIED_BAD],
}


@pytest.mark.parametrize("name", list(XSD_CASES))
def test_renders_validate_against_junit_10_xsd(name: str) -> None:
    validate_against_xsd(render(XSD_CASES[name]))


@pytest.mark.parametrize("own", ["tagmatrix", "tagmatrix.", "tagmatrix..", "tests.tagmatrix",
                                 "tagmatrixx", ""])
def test_a_test_classname_like_the_harness_reads_back_as_the_test_it_is(own: str) -> None:
    # a module named tagmatrix.py: its cases once read back as tagmatrix's own passing
    # harness cases, and `tagmatrix report` dropped a real failure
    from orchestrator.junit_in import parse_cell_suite

    failing = TestCase(classname=own, name="test_real_failure", outcome=TestOutcome.FAILED,
                       message="a real failure")
    xml = render([cell("3.12-slim", status=Status.FAILED, cases=(failing,))])
    classnames = [c.get("classname") for c in parse(xml).iter("testcase")]
    assert classnames.count("3.12-slim.tagmatrix") == 3  # the harness's, and only those
    cases, _ = parse_cell_suite(xml, "3.12-slim")
    assert [(c.classname, c.name, c.outcome) for c in cases] == \
        [(own, "test_real_failure", TestOutcome.FAILED)]
