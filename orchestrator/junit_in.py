"""Read the per-test JUnit a cell's container wrote: untrusted input.

The XML comes from the user's container, so it is parsed with defusedxml
(no DTDs, so no entity expansion: billion-laughs and external entities are
refused) after a size cap. pytest 9 writes ``<testsuites><testsuite ...>``,
older tools a bare ``<testsuite>``: both are accepted, nested suites too.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import replace
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .results import TestCase, TestOutcome

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_CASES = 300_000  # test cases kept from one cell (packaging's suite has 64,204)
_MAX_TEXT = 64 * 1024  # per failure body / system-out kept from one test


# How reports/junit.py writes a quarantined failure (a skip, as pytest writes an xfail)
# and how parse_cell_suite reads it back as the failure it was: the type attribute
# "tagmatrix.quarantined.<failed|error>[:<original type>]", the message after PREFIX,
# the failure text as the skip's text, the test's own output after OWN_OUTPUT.
QUARANTINED = "tagmatrix.quarantined"
QUARANTINED_PREFIX = "quarantined, does not gate: "
OWN_OUTPUT = "\n[tagmatrix] the test's own output:\n"


class InvalidResults(ValueError):
    """The inner JUnit is missing, too big, hostile or not JUnit at all."""


def clip(text: str | None, limit: int = _MAX_TEXT) -> str:
    """Head and tail of ``text`` with a "[truncated N characters]" marker, at most ``limit``
    long; clipping a clipped text changes nothing (reports can be re-rendered)."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    marker = f"\n[truncated {len(text)} characters]\n"  # an upper bound of the cut's digits
    keep = max(limit - len(marker), 0)
    head, tail = text[:keep // 2], text[len(text) - (keep - keep // 2):]
    return f"{head}\n[truncated {len(text) - len(head) - len(tail)} characters]\n{tail}"


def _time(value: str | None) -> float:
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def _case(element: Element) -> TestCase:
    outcome, message, kind, text = TestOutcome.PASSED, "", "", ""
    # A failure outranks an error in the same case (a teardown error after it).
    for tag, name in (("failure", TestOutcome.FAILED), ("error", TestOutcome.ERROR),
                      ("skipped", TestOutcome.SKIPPED)):
        child = element.find(tag)
        if child is not None:
            outcome, message = name, child.get("message", "")
            kind, text = child.get("type", ""), child.text or ""
            break
    reran = any(element.find(tag) is not None
                for tag in ("flakyFailure", "flakyError", "rerunFailure", "rerunError"))
    return TestCase(
        flaky=reran and outcome is TestOutcome.PASSED,
        classname=element.get("classname", ""),
        name=element.get("name", "") or "(unnamed)",
        time=_time(element.get("time")),
        outcome=outcome,
        message=clip(message),
        type=kind,
        text=clip(text),
        system_out=clip(element.findtext("system-out")),
        system_err=clip(element.findtext("system-err")),
    )


def _dedupe(cases: list[TestCase]) -> list[TestCase]:
    """Give repeated (classname, name) pairs a suffix: GitLab keeps only the first of
    duplicates, and pytest reports a teardown error after a failure as a second case."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for case in cases:
        key = (case.classname, case.name)
        seen[key] = seen.get(key, 0) + 1
        out.append(replace(case, name=f"{case.name} [{seen[key]}]") if seen[key] > 1 else case)
    return out


class _BigReads(io.BytesIO):
    """iterparse reads 16 KiB at a time; expat (before 2.6's reparse deferral) scans a
    token that spans many reads again at each read, so one 60 MiB attribute took 103 s.
    The data is in memory already: hand it over in large pieces."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(-1 if size is None or size < 0 else max(size, _READ))


_READ = 8 * 1024 * 1024


def _iter_cases(data: bytes, max_cases: int) -> Iterator[Element]:
    """Each <testcase> as it completes, parsed incrementally: a processed case is dropped
    from its parent at once, so memory follows the cases kept, not the XML."""
    stack: list[Element] = []
    count = 0
    for event, element in SafeET.iterparse(_BigReads(data), events=("start", "end"),
                                           forbid_dtd=True):
        if event == "start":
            if not stack and element.tag not in ("testsuites", "testsuite"):
                raise InvalidResults(f"not JUnit: the root element is <{element.tag}>")
            stack.append(element)
            continue
        stack.pop()
        if element.tag == "testcase":
            count += 1
            if count > max_cases:
                raise InvalidResults(f"JUnit file has more than {max_cases} test cases "
                                     "(tagmatrix's cap)")
            yield element
            if stack:
                stack[-1].remove(element)


def parse_junit(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                max_cases: int = MAX_CASES) -> list[TestCase]:
    """Per-test cases from JUnit bytes; :class:`InvalidResults` explains any refusal."""
    if len(data) > max_bytes:
        raise InvalidResults(f"JUnit file is {len(data)} bytes, over the {max_bytes}-byte cap")
    if not data.strip():
        raise InvalidResults("JUnit file is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # Invalid UTF-8 from a test's output: repaired visibly (U+FFFD) before parsing.
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    try:
        return _dedupe([_case(e) for e in _iter_cases(data, max_cases)])
    except DefusedXmlException as exc:
        raise InvalidResults(f"JUnit file refused as unsafe XML ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise InvalidResults(f"JUnit file is not well-formed XML: {exc}") from exc


HARNESS = "tagmatrix"  # the classname, after the cell's id, of tagmatrix's own cases


def written_classname(cell_id: str, own: str) -> str:
    """A test's classname in the reports: the cell's id, then its own. A test module
    named ``tagmatrix`` (or a JUnit that says so) would take the harness's classname,
    and its failures would read back as tagmatrix's passing cases: an own classname of
    ``tagmatrix`` and any dots gets one dot more (own_classname takes it off)."""
    if not own:
        return cell_id
    return f"{cell_id}.{own}." if own.rstrip(".") == HARNESS else f"{cell_id}.{own}"


def own_classname(cell_id: str, written: str) -> str | None:
    """The inverse of written_classname; None for the harness's own cases."""
    if written == f"{cell_id}.{HARNESS}":
        return None
    prefix = f"{cell_id}."
    own = written[len(prefix):] if written.startswith(prefix) else (
        "" if written == cell_id else written)
    return own[:-1] if own.rstrip(".") == HARNESS and own.endswith(".") else own


def parse_cell_suite(data: bytes, cell_id: str) -> tuple[list[TestCase], str]:
    """A cell's own per-test cases and output excerpt back from reports/cells/<id>.xml
    (tagmatrix's own file): harness cases dropped, the cell prefix taken off."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise InvalidResults(f"cannot read the cell report: {exc}") from exc
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise InvalidResults("the cell report has no <testsuite>")
    cases = []
    for element in suite.iter("testcase"):
        own = own_classname(cell_id, element.get("classname", ""))
        if own is None:
            continue
        cases.append(_unquarantined(replace(_case(element), classname=own)))
    return cases, suite.findtext("system-out") or ""


def _unquarantined(case: TestCase) -> TestCase:
    """A quarantined failure of tagmatrix's own cell report, as the failure it was (the
    run's results.json says it is quarantined; the next render writes it as a skip again)."""
    kind = case.type
    if case.outcome is not TestOutcome.SKIPPED or not kind.startswith(f"{QUARANTINED}."):
        return case
    outcome, _, original = kind[len(QUARANTINED) + 1:].partition(":")
    _, _, output = case.system_out.partition(OWN_OUTPUT)
    return replace(case, outcome=TestOutcome.ERROR if outcome == "error" else TestOutcome.FAILED,
                   type=original, message=case.message.removeprefix(QUARANTINED_PREFIX),
                   system_out=output)
