"""Quarantine: what does not gate, what expired, what could go."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.history.flaky import CellInputs, Observation
from orchestrator.history.quarantine import apply_quarantine, parse_quarantine

from .history_helpers import case, cell, run

TODAY = dt.date(2026, 11, 28)
INPUTS = CellInputs(project="p", image="i", interpreter="3.13.0")


def test_entries_parse_from_yaml_values() -> None:
    entries = parse_quarantine([
        {"test": "tests.test_net::*", "until": dt.date(2026, 12, 31)},
        {"test": "*::test_tz", "until": "2027-01-15",
         "cells": ["python=3.13*", {"variant": "slim"}], "reason": "https://example.org/issues/1"},
    ])
    assert [e.until for e in entries] == [dt.date(2026, 12, 31), dt.date(2027, 1, 15)]
    assert [s.text for s in entries[1].cells] == ["python=3.13*", "variant=slim"]
    assert entries[1].describe() == \
        "quarantine[1] *::test_tz in python=3.13*, variant=slim until 2027-01-15"


@pytest.mark.parametrize(("data", "key", "message"), [
    ({"x": 1}, "quarantine", "must be a list"),
    ([{"test": "t::*"}], "quarantine[0].until", "must not last forever"),
    ([{"test": "t::*", "until": "next week"}], "quarantine[0].until", "not a date"),
    ([{"until": "2026-12-31"}], "quarantine[0].test", "needs a test glob"),
    ([{"test": "t", "until": "2026-12-31", "cell": []}], "quarantine[0]", "unknown key 'cell'"),
    ([{"test": "t", "until": "2026-12-31", "cells": [""]}], "quarantine[0].cells[0]",
     "bad selector"),
])
def test_bad_entries_name_their_key(data: Any, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_quarantine(data)
    assert caught.value.key == key


def test_quarantined_failures_do_not_gate_and_expired_entries_do_nothing() -> None:
    entries = parse_quarantine([
        {"test": "t::net_*", "until": "2026-12-31"},
        {"test": "t::tz", "until": "2026-12-31", "cells": ["python=3.13"]},
        {"test": "t::old", "until": "2026-11-27"},  # expired yesterday
    ])
    current = run("n-28",
                  cell("3.12-slim", (case("t::net_dns", "failed"), case("t::tz", "failed"))),
                  cell("3.13-slim", (case("t::net_dns", "failed"), case("t::tz", "error"))),
                  cell("3.13-alpine", (case("t::old", "failed"),)))
    report = apply_quarantine(entries, current, today=TODAY)
    assert sorted((h.test, h.cell, h.entry.index) for h in report.held) == [
        ("t::net_dns", "3.12-slim", 0), ("t::net_dns", "3.13-slim", 0),
        ("t::tz", "3.13-slim", 1)]
    assert sorted(report.gating) == [("t::old", "3.13-alpine"), ("t::tz", "3.12-slim")]
    assert report.released_cells == ("3.13-slim",)
    assert [e.test for e in report.expired] == ["t::old"]
    assert apply_quarantine(entries, current, today=dt.date(2026, 12, 31)).held  # last day


def _night(seq: int, outcome: str, test: str = "t::net_dns",
           cell_id: str = "3.12-slim") -> Observation:
    return Observation(test=test, cell=cell_id, seq=seq, run_id=f"n-{seq:02d}",
                       outcome=outcome, rerun=False, inputs=INPUTS)


def test_an_entry_whose_tests_kept_passing_is_suggested_for_removal() -> None:
    entries = parse_quarantine([{"test": "t::net_*", "until": "2026-12-31"},
                                {"test": "t::tz", "until": "2026-12-31"}])
    current = run("n-28", cell("3.12-slim", (case("t::net_dns"), case("t::tz"))))
    passing = [_night(s, "passed") for s in range(1, 6)]
    tz = [_night(s, "failed" if s == 4 else "passed", "t::tz") for s in range(1, 6)]
    report = apply_quarantine(entries, current, today=TODAY, observations=passing + tz,
                              clean_runs=5)
    [removable] = report.removable
    assert (removable.entry.index, removable.tests, removable.runs) == (0, ("t::net_dns",), 5)
    assert removable.describe().endswith("passed in each of the last 5 runs (1 test(s)); "
                                         "consider removing it")


def test_too_little_history_suggests_nothing() -> None:
    entries = parse_quarantine([{"test": "t::net_*", "until": "2026-12-31"}])
    current = run("n-28", cell("3.12-slim", (case("t::net_dns"),)))
    report = apply_quarantine(entries, current, today=TODAY,
                              observations=[_night(s, "passed") for s in range(1, 4)])
    assert report.removable == ()
