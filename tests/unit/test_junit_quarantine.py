"""A quarantined test's failure is a skip in junit.xml and cells/*.xml (it does not gate),
with the failure kept; read back, it is the failure it was."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import junitparser

from orchestrator.junit_in import parse_cell_suite
from orchestrator.reports.junit import render
from orchestrator.results import CellResult, Status, TestCase, TestCounts, TestOutcome
from tests.conftest import validate_against_xsd

FLAKY = TestCase(classname="tests.test_net", name="test_timeout[a]", time=1.25,
                 outcome=TestOutcome.FAILED, type="AssertionError", message="assert 1 == 2",
                 text="def test_timeout():\n>   assert 1 == 2\nE   assert 1 == 2",
                 system_out="connecting…\n")
BROKEN = TestCase(classname="tests.test_api", name="test_parse", outcome=TestOutcome.ERROR,
                  type="KeyError", message="KeyError: 'x'", text="Traceback …")
OK = TestCase(classname="tests.test_api", name="test_ok", time=0.5)


def _cell(*cases: TestCase, quarantined: tuple[str, ...] = ()) -> CellResult:
    return CellResult(id="3.12-slim", python="3.12", variant="slim", status=Status.FAILED,
                      cases=cases, tests=TestCounts.of(cases), duration_s=3.0,
                      failing_tests=tuple(c.key for c in cases if c.outcome.bad),
                      quarantined=quarantined)


def _case(xml: bytes, name: str) -> ET.Element:
    found = ET.fromstring(xml).find(f".//testcase[@name='{name}']")  # noqa: S314 - ours
    assert found is not None
    return found


def test_a_quarantined_failure_is_a_skip_that_keeps_the_failure() -> None:
    xml = render([_cell(FLAKY, BROKEN, OK, quarantined=(FLAKY.key,))])
    validate_against_xsd(xml)
    case = _case(xml, "test_timeout[a]")
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.attrib == {"type": "tagmatrix.quarantined.failed:AssertionError",
                              "message": "quarantined, does not gate: assert 1 == 2"}
    assert skipped.text == FLAKY.text
    assert case.findtext("system-out") == (
        "[tagmatrix] failed, but quarantined: it does not gate\nAssertionError: assert 1 == 2"
        f"\n{FLAKY.text}\n[tagmatrix] the test's own output:\nconnecting…\n")
    # the other failure still is one; the counts are what a CI reads
    assert _case(xml, "test_parse").find("error") is not None
    [suite] = junitparser.JUnitXml.fromstring(xml.decode())
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 0, 1, 1)
    [result] = next(c for c in suite if c.name == "test_timeout[a]").result
    assert isinstance(result, junitparser.Skipped)


def test_without_quarantine_a_failure_stays_a_failure() -> None:
    xml = render([_cell(FLAKY, OK)])
    assert _case(xml, "test_timeout[a]").find("failure") is not None


def test_a_quarantined_error_reads_back_as_the_error_it_was() -> None:
    cell = _cell(FLAKY, BROKEN, OK, quarantined=(FLAKY.key, BROKEN.key))
    xml = render([cell], name=cell.id)
    skipped = _case(xml, "test_parse").find("skipped")
    assert skipped is not None
    assert skipped.get("type") == "tagmatrix.quarantined.error:KeyError"
    cases, _ = parse_cell_suite(xml, cell.id)
    assert [c for c in cases if c.name != "test_ok"] == \
        [FLAKY, BROKEN]  # outcome, type, message, text and own output as they were
    # so `tagmatrix report` writes the very same file again
    assert render([_cell(*cases, quarantined=cell.quarantined)], name=cell.id) == xml
