"""A warning is recognised by category, message, file and test, not by its line; its
tests are named as everywhere else in tagmatrix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.nightly import new_warnings
from orchestrator.results import RunResult
from orchestrator.warnings_ledger import (
    CellWarnings,
    LedgerEntry,
    WarningRecord,
    build_ledger,
    junit_key,
    records_from,
)

from .history_helpers import case, cell, run

UTCNOW = "datetime.datetime.utcnow() is deprecated"


def _warning(lineno: int, *tests: str, message: str = UTCNOW) -> WarningRecord:
    return WarningRecord(category="DeprecationWarning", message=message,
                         filename="tests/test_app.py", lineno=lineno, count=len(tests),
                         tests=tests, test_count=len(tests))


def _night(run_id: str, *warnings: WarningRecord) -> RunResult:
    night = run(run_id, cell("3.12-slim", (case("tests.test_app::test_now"),)))
    return replace(night, cells=tuple(replace(c, warnings=warnings) for c in night.cells))


def _ledger(night: RunResult) -> list[LedgerEntry]:
    return build_ledger([CellWarnings(cell=c.id, python=c.python, warnings=c.warnings or ())
                         for c in night.cells])


def test_a_line_added_above_the_call_does_not_make_its_warning_new() -> None:
    baseline = _night("n-01", _warning(23, "tests.test_app::test_now"))
    tonight = _night("n-02", _warning(24, "tests.test_app::test_now"))
    [entry] = _ledger(tonight)
    assert entry.location == "tests/test_app.py:24"  # the line is kept to show where
    assert new_warnings([entry], baseline) == ()


def test_a_new_message_or_a_new_test_raising_it_is_new() -> None:
    baseline = _night("n-01", _warning(23, "tests.test_app::test_now"))
    other = _night("n-02", _warning(23, "tests.test_app::test_now", message="other"))
    assert new_warnings(_ledger(other), baseline) == \
        ("DeprecationWarning: other (tests/test_app.py:23)",)
    more = _night("n-02", _warning(40, "tests.test_app::test_now", "tests.test_app::test_later"))
    assert new_warnings(_ledger(more), baseline) == \
        (f"DeprecationWarning: {UTCNOW} (tests/test_app.py:40)",)


def test_a_list_of_tests_cut_at_its_cap_is_no_evidence_of_a_new_test() -> None:
    capped = replace(_warning(23, "tests.test_app::test_now"), test_count=25)
    baseline = _night("n-01", capped)
    tonight = _night("n-02", _warning(23, "tests.test_app::test_other"))
    assert new_warnings(_ledger(tonight), baseline) == ()


def test_two_lines_of_one_file_are_one_entry_with_both_lines() -> None:
    night = _night("n-01", _warning(41, "tests.test_app::test_a"),
                   _warning(23, "tests.test_app::test_b"))
    [entry] = _ledger(night)
    assert entry.location == "tests/test_app.py:23, 41"
    assert entry.tests == ("tests.test_app::test_a", "tests.test_app::test_b")
    assert entry.identity == ("DeprecationWarning", UTCNOW, "tests/test_app.py")


@pytest.mark.parametrize(("node_id", "key"), [
    ("tests/test_x.py::test_y", "tests.test_x::test_y"),
    ("tests/sub/test_x.py::TestC::test_m", "tests.sub.test_x.TestC::test_m"),
    ("tests/test_x.py::test_p[a/b.py::c]", "tests.test_x::test_p[a/b.py::c]"),
    ("tests/test_x.py", "tests.test_x"),  # a collection error: pytest's JUnit name
    ("tests.test_x::test_y", "tests.test_x::test_y"),  # already a key: unchanged
    ("tests.sub.test_x.TestC::test_m", "tests.sub.test_x.TestC::test_m"),
])
def test_pytest_node_ids_become_the_keys_pytests_junit_gives(node_id: str, key: str) -> None:
    assert junit_key(node_id) == key
    assert junit_key(key) == key
    [record] = records_from([{"message": "m", "tests": [node_id]}])
    assert record.tests == (key,)
