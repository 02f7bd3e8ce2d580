"""The warnings ledger across cells, from untrusted per-cell files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.warnings_ledger import (
    MAX_FILE_BYTES,
    CellWarnings,
    InvalidLedger,
    build_ledger,
    parse_cell_warnings,
)


def _file(*warnings: Any) -> bytes:
    return json.dumps({"format": 1, "warnings": list(warnings), "dropped": 0}).encode()


def _warning(message: str, *, filename: str = "pkg/mod.py", lineno: int = 10, count: int = 1,
             tests: tuple[str, ...] = ("tests/test_a.py::test_a",),
             category: str = "DeprecationWarning") -> dict[str, Any]:
    return {"category": category, "message": message, "filename": filename, "lineno": lineno,
            "count": count, "tests": list(tests), "test_count": len(tests)}


def _cell(cell: str, python: str, interpreter: str, *warnings: dict[str, Any]) -> CellWarnings:
    return parse_cell_warnings(_file(*warnings), cell=cell, python=python,
                               interpreter=interpreter)


@pytest.mark.parametrize(("data", "message"), [
    (b"x" * (MAX_FILE_BYTES + 1), "over"),
    (b"\xff\xfe", "not JSON"),
    (b"[" * 100_000, "not JSON"),
    (b'{"warnings": "all of them"}', "no 'warnings' list"),
    (b"[]", "no 'warnings' list"),
])
def test_a_broken_or_hostile_file_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidLedger, match=message):
        parse_cell_warnings(data, cell="3.13-slim", python="3.13")


def test_wrong_types_are_dropped_or_defaulted_and_text_is_clipped() -> None:
    parsed = parse_cell_warnings(_file(
        {"message": "x" * 10_000, "count": -5, "lineno": "12", "tests": [1, "t::ok", None],
         "category": ["DeprecationWarning"]},
        {"message": 42}, "not a mapping"), cell="3.13-slim", python="3.13")
    [record] = parsed.warnings
    assert (len(record.message), record.count, record.lineno, record.tests, record.category,
            record.filename) == (500, 1, 0, ("t::ok",), "Warning", "?")


def test_warnings_are_merged_across_cells_the_newest_first() -> None:
    old = _warning("datetime.utcnow() is deprecated", count=2)
    new = _warning("ast.Num is deprecated", filename="<stdlib>/ast.py", lineno=587,
                   tests=("tests/test_b.py::test_b",))
    pre = _warning("codecs.open() is deprecated", filename="pkg/io.py", lineno=3)
    ledger = build_ledger([
        _cell("3.11-slim", "3.11", "3.11.7"),
        _cell("3.12-slim", "3.12", "3.12.1", old),
        _cell("3.13-slim", "3.13", "3.13.0", old, new),
        _cell("3.14-rc-slim", "3.14-rc", "3.14.0rc1", old, new, pre),
    ])
    assert [(e.message, e.pythons, e.first_seen, e.new, e.count) for e in ledger] == [
        ("codecs.open() is deprecated", ("3.14 (pre-release)",), "3.14 (pre-release)", True, 1),
        ("ast.Num is deprecated", ("3.13", "3.14 (pre-release)"), "3.13", True, 2),
        ("datetime.utcnow() is deprecated", ("3.12", "3.13", "3.14 (pre-release)"), "3.12",
         False, 6),
    ]
    assert ledger[1].location == "<stdlib>/ast.py:587"
    assert ledger[1].cells == ("3.13-slim", "3.14-rc-slim")
    assert ledger[2].describe() == ("first seen on 3.12: DeprecationWarning: datetime.utcnow() "
                                    "is deprecated (pkg/mod.py:10, 1 test)")
    assert ledger[2].describe(width=10) == ("first seen on 3.12: DeprecationWarning: "
                                            "datetime.u\N{HORIZONTAL ELLIPSIS} (pkg/mod.py:10, "
                                            "1 test)")
    assert ledger[1].test_count == 1  # test_b, in two cells
    assert ledger[0].to_json()["first_seen"] == "3.14 (pre-release)"


def test_nothing_is_new_when_only_one_interpreter_ran() -> None:
    ledger = build_ledger([_cell("3.13-slim", "3.13", "3.13.0", _warning("a")),
                           _cell("3.13-alpine", "3.13", "", _warning("a"))])
    assert [(e.new, e.pythons, e.count) for e in ledger] == [(False, ("3.13",), 2)]


def test_tests_are_counted_once_across_cells_and_past_the_listed_ones() -> None:
    ledger = build_ledger([
        _cell("3.12-slim", "3.12", "3.12.1", _warning("w", tests=("t::a", "t::b"))),
        _cell("3.13-slim", "3.13", "3.13.0", _warning("w", tests=("t::b", "t::c"))),
        _cell("3.14-slim", "3.14", "3.14.0", {**_warning("w"), "test_count": 40})])
    assert ledger[0].test_count == 40  # the cell that counted past the listed ones
    [entry] = build_ledger([
        _cell("3.12-slim", "3.12", "3.12.1", _warning("w", tests=("t::a", "t::b"))),
        _cell("3.13-slim", "3.13", "3.13.0", _warning("w", tests=("t::b", "t::c")))])
    assert entry.test_count == 3  # t::b once
