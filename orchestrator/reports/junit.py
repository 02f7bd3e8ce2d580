"""Matrix-aware JUnit, built with junit-xml, readable by every common consumer.

One flat ``<testsuite>`` per cell named by the cell id (Jenkins merges
same-named suites; dorny/test-reporter drops nested ones); every testcase's
``classname`` starts with the cell id (GitLab keys tests by classname + name,
and shows the classname as "Suite"). Harness cases ``build``, ``run`` and
``results`` report infrastructure problems as ``<error>``; ``<failure>`` is
left to the tests.

A quarantined test's failure does not gate, so it is no ``<failure>`` either (a CI
would show red while tagmatrix exits 0): it is a ``<skipped>`` whose message says
"quarantined, does not gate: <the failure's message>", as pytest writes an xfail
(pytest-quarantine marks quarantined tests xfail) and as Buildkite's muted tests
soft-fail; the failure text stays, as the skip's text and at the top of the
test's system-out, which Jenkins and GitLab show beside a skipped test.

junit-xml 1.9 builds the elements (``TestSuite.build_xml_doc``); we serialise
them ourselves because its serialiser deletes invalid characters and its
attributes do not validate against Jenkins' junit-10.xsd. Worked-around bugs
(each has a test in tests/unit/test_junit.py):

- a failure/error with neither message nor output is silently dropped: we
  always give a message;
- ``time`` is omitted when 0: we set it on every case and suite;
- invalid XML characters (ESC, NUL ...) are deleted: we escape them visibly
  first, as pytest does (``#x1B``);
- ``disabled`` on suites and ``testsuites`` is not in the XSD: removed; times
  are plain decimals with at most 3 fraction digits (the XSD's SUREFIRE_TIME).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import assert_never

from junit_xml import TestCase as JTestCase
from junit_xml import TestSuite as JTestSuite

from ..errors import Stage
from ..history.flaky import test_name
from ..junit_in import (
    HARNESS,
    OWN_OUTPUT,
    QUARANTINED,
    QUARANTINED_PREFIX,
    clip,
    written_classname,
)
from ..results import CellResult, Status, TestCase, TestOutcome

# Per suite; the full output is in the cell's log file. Larger than the cell
# log's head + tail excerpt (2 x 32 KiB + marker), so that is never cut twice.
SYSTEM_OUT_MAX = 72 * 1024

# XML 1.0 forbids C0 controls but TAB/LF/CR; C1 controls and DEL are legal but
# break consumers (junit-xml deletes them too): escape them all visibly.
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def escape_visible(text: str) -> str:
    """``"\\x1b[31m"`` -> ``"#x1B[31m"``: nothing deleted, the file stays parseable."""
    return _INVALID.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def _time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def _harness_name(stage: Stage) -> str:
    """The harness case a stage's error belongs to (a Swarm push is part of the build)."""
    match stage:
        case Stage.PULL | Stage.BUILD | Stage.PUSH:
            return "build"
        case Stage.RESULTS:
            return "results"
        case Stage.RUN | Stage.ENGINE | Stage.INTERNAL | Stage.NONE:
            return "run"
        case _:
            assert_never(stage)


def _add_attempts(cell: CellResult, suite: ET.Element) -> None:
    """Earlier failed attempts, as surefire does for reruns: ``flakyError`` when the cell
    got through in the end, ``rerunError`` when it did not."""
    kind = "rerunError" if cell.status is Status.ERROR else "flakyError"
    for attempt in cell.attempts[:-1]:
        name = _harness_name(attempt.stage)
        for case in suite.iter("testcase"):
            if case.get("name") == name and case.get("classname") == f"{cell.id}.{HARNESS}":
                ET.SubElement(case, kind, {
                    "type": attempt.stage.value or "error",
                    "message": escape_visible(f"attempt {attempt.number}: {attempt.reason}")})


def _harness(cell: CellResult) -> list[JTestCase]:
    """build, run and results: passing, or <error> for infrastructure problems."""
    classname = f"{cell.id}.{HARNESS}"
    cases = {name: JTestCase(name, classname=classname, elapsed_sec=0.0)
             for name in ("build", "run", "results")}
    cases["build"].elapsed_sec = cell.build_s
    cases["run"].elapsed_sec = cell.run_s
    reason = escape_visible(cell.reason or str(cell.status))
    match cell.status:
        case Status.SKIPPED:
            for case in cases.values():
                case.add_skipped_info(message=reason)
        case Status.CANCELLED:
            for case in cases.values():
                case.add_skipped_info(message=f"cancelled: {reason}")
        case Status.TIMEOUT:
            cases["run"].add_error_info(message=reason, error_type="timeout")
            cases["results"].add_skipped_info(message="no results: the cell timed out")
        case Status.ERROR:
            stage = cell.stage or Stage.RUN
            name = _harness_name(stage)
            cases[name].add_error_info(message=reason, error_type=stage.value)
            after = {"build": ("run", "results"), "run": ("results",), "results": ()}[name]
            for later in after:
                cases[later].add_skipped_info(message=f"not reached: {name} failed")
        case Status.PASSED | Status.FAILED:
            pass  # the harness passed; the tests' own cases say the rest
        case _:
            assert_never(cell.status)
    return list(cases.values())


def _quarantined(cell: CellResult, case: TestCase) -> JTestCase:
    """A quarantined test's failure as a skip that keeps the failure (see the module)."""
    classname = written_classname(cell.id, case.classname)
    message = case.message or str(case.outcome)
    output = f"[tagmatrix] {case.outcome}, but quarantined: it does not gate\n" \
             + (f"{case.type}: " if case.type else "") + f"{message}\n{case.text}".rstrip()
    if case.system_out:
        output += OWN_OUTPUT + case.system_out
    out = JTestCase(escape_visible(case.name), classname=escape_visible(classname),
                    elapsed_sec=case.time, stdout=escape_visible(output),
                    stderr=escape_visible(case.system_err) or None)
    out.add_skipped_info(message=escape_visible(QUARANTINED_PREFIX + message),
                         output=escape_visible(case.text) or None)
    return out


def _inner(cell: CellResult, case: TestCase) -> JTestCase:
    if case.outcome.bad and test_name(case.key) in cell.quarantined:
        return _quarantined(cell, case)
    classname = written_classname(cell.id, case.classname)
    out = JTestCase(escape_visible(case.name), classname=escape_visible(classname),
                    elapsed_sec=case.time,
                    stdout=escape_visible(case.system_out) or None,
                    stderr=escape_visible(case.system_err) or None)
    # junit-xml drops a failure/error without message or output: never give it none.
    message = escape_visible(case.message) or f"{case.outcome}"
    text = escape_visible(case.text) or None
    match case.outcome:
        case TestOutcome.FAILED:
            out.add_failure_info(message=message, output=text, failure_type=case.type or None)
        case TestOutcome.ERROR:
            out.add_error_info(message=message, output=text, error_type=case.type or None)
        case TestOutcome.SKIPPED:
            out.add_skipped_info(message=escape_visible(case.message) or "skipped",
                                 output=text)
        case TestOutcome.PASSED:
            pass
        case _:
            assert_never(case.outcome)
    return out


def _properties(cell: CellResult) -> dict[str, str]:
    props = {
        "image": cell.image,
        "image.digest": cell.image_digest,
        "built_image": cell.built_image,
        "python.tag": cell.python,
        "python.version": cell.interpreter.version,
        "python.executable": cell.interpreter.executable,
        "variant": cell.variant,
        "platform": cell.platform,
        "engine": cell.engine,
        "node": cell.node,
        "exit_code": "" if cell.exit_code is None else str(cell.exit_code),
        "status": str(cell.status),
        "reason": cell.reason,
        "gating": "true" if cell.gating else "false (allowed to fail)",
        "attempts": str(max(len(cell.attempts), 1)),
    }
    props.update({f"axis.{k}": v for k, v in cell.axes.items()})
    return {k: escape_visible(v) for k, v in props.items()}


def _type_quarantined(cell: CellResult, element: ET.Element) -> None:
    """junit-xml writes no type on a skip: the quarantined ones get theirs, which says the
    outcome they had (and lets a cell report be read back as it was)."""
    held = {(escape_visible(f"{cell.id}.{c.classname}" if c.classname else cell.id),
             escape_visible(c.name)):
            f"{QUARANTINED}.{c.outcome}" + (f":{c.type}" if c.type else "")
            for c in cell.cases if c.outcome.bad and test_name(c.key) in cell.quarantined}
    if not held:
        return
    for testcase in element.iter("testcase"):
        kind = held.get((testcase.get("classname", ""), testcase.get("name", "")))
        skipped = testcase.find("skipped")
        if kind is not None and skipped is not None:
            skipped.set("type", escape_visible(kind))


def suite_element(cell: CellResult) -> ET.Element:
    """One cell as a flat <testsuite>."""
    cases = _harness(cell) + [_inner(cell, c) for c in cell.cases]
    suite = JTestSuite(
        cell.id, cases, hostname=cell.node or None, timestamp=cell.started_at or None,
        properties=_properties(cell),
        stdout=escape_visible(clip(cell.output_tail, SYSTEM_OUT_MAX)) or None)
    element: ET.Element = suite.build_xml_doc()
    element.attrib.pop("disabled", None)
    _add_attempts(cell, element)
    _type_quarantined(cell, element)
    element.set("time", _time(cell.duration_s))
    for testcase in element.iter("testcase"):
        # zero times are omitted by junit-xml; the XSD and some readers want one.
        testcase.set("time", _time(float(testcase.get("time") or 0.0)))
    return element


def render(cells: Iterable[CellResult], *, name: str = "tagmatrix") -> bytes:
    """``<testsuites>`` with one suite per cell; counts recomputed from the cases."""
    root = ET.Element("testsuites", {"name": name})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for cell in cells:
        suite = suite_element(cell)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += cell.duration_s
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _time(seconds))
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
