"""Flaky, broken and fixed told apart by what went into the cell."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.history.flaky import (
    CellInputs,
    Observation,
    Verdict,
    classify,
    find_flaky,
    observations_of,
    package_changes,
)
from orchestrator.results import TestOutcome

from .history_helpers import case, cell, run

SAME = CellInputs(project="sha256:p1", image="sha256:i1", interpreter="3.13.0",
                  packages=(("attrs", "23.1.0"),))


def obs(test: str, seq: int, outcome: str, *, cell_id: str = "3.13-slim",
        inputs: CellInputs = SAME, rerun: bool = False) -> Observation:
    return Observation(test=test, cell=cell_id, seq=seq, run_id=f"n-{seq:02d}",
                       outcome=outcome, rerun=rerun, inputs=inputs)


def test_a_flip_with_nothing_changed_is_flaky_with_its_evidence() -> None:
    history = [obs("t::a", 1, "passed"), obs("t::a", 2, "failed"), obs("t::a", 3, "passed"),
               obs("t::a", 4, "passed"), obs("t::a", 5, "skipped"), obs("t::a", 6, "passed")]
    [flaky] = find_flaky(history)
    assert (flaky.test, flaky.cells, flaky.flips, flaky.comparisons, flaky.runs) == \
        ("t::a", ("3.13-slim",), 2, 4, 5)
    assert flaky.rate == 0.5
    assert [(f.before, f.after, f.was, f.now) for f in flaky.evidence] == \
        [("n-01", "n-02", "passed", "failed"), ("n-02", "n-03", "failed", "passed")]
    assert flaky.to_json() == {
        "test": "t::a", "cells": ["3.13-slim"], "flips": 2, "runs": 5, "rate": 0.5,
        "comparisons": 4, "flipped_runs": 2,
        "evidence": [{"cell": "3.13-slim", "before": "n-01", "after": "n-02",
                      "from": "passed", "to": "failed"},
                     {"cell": "3.13-slim", "before": "n-02", "after": "n-03",
                      "from": "failed", "to": "passed"}]}


@pytest.mark.parametrize("changed", [
    replace(SAME, project="sha256:p2"),
    replace(SAME, image="sha256:i2"),
    replace(SAME, interpreter="3.13.1"),
    replace(SAME, packages=(("attrs", "24.2.0"),)),
    replace(SAME, project=""),  # not recorded: something may have changed unseen
])
def test_a_flip_when_an_input_changed_is_not_flaky(changed: CellInputs) -> None:
    assert find_flaky([obs("t::a", 1, "passed"), obs("t::a", 2, "failed", inputs=changed)]) \
        == []


def test_unknown_packages_on_one_side_do_not_hide_a_flake() -> None:
    unknown = replace(SAME, packages=None)
    assert len(find_flaky([obs("t::a", 1, "passed"), obs("t::a", 2, "error",
                                                          inputs=unknown)])) == 1


def test_a_pass_on_rerun_is_a_flip_and_error_to_failed_is_not() -> None:
    found = find_flaky([obs("t::r", 1, "passed", rerun=True),
                        obs("t::e", 1, "error"), obs("t::e", 2, "failed")])
    assert [(f.test, f.flips, f.comparisons) for f in found] == [("t::r", 1, 1)]
    assert found[0].evidence[0].before is None


def test_flakiest_first() -> None:
    found = find_flaky([obs("t::rare", 1, "passed"), obs("t::rare", 2, "failed"),
                        obs("t::rare", 3, "failed"), obs("t::rare", 4, "failed"),
                        obs("t::often", 1, "passed"), obs("t::often", 2, "failed")])
    assert [f.test for f in found] == ["t::often", "t::rare"]


def test_verdicts_against_each_cells_previous_result() -> None:
    moved = replace(SAME, image="sha256:i2", interpreter="3.13.1",
                    packages=(("attrs", "24.2.0"), ("tomli", "2.0.1")))
    previous = [obs("t::broken", 1, "passed"), obs("t::broken", 2, "passed"),
                obs("t::fixed", 2, "failed"), obs("t::flaky", 2, "passed"),
                obs("t::still", 2, "error"), obs("t::fine", 2, "passed"),
                obs("t::flaky", 1, "failed")]
    current = [obs("t::broken", 9, "failed", inputs=moved), obs("t::fixed", 9, "passed",
                                                                inputs=moved),
               obs("t::flaky", 9, "failed"), obs("t::still", 9, "failed"),
               obs("t::fine", 9, "passed"), obs("t::new", 9, "failed"),
               obs("t::rerun", 9, "passed", rerun=True)]
    verdicts = {v.test: v for v in classify(current, previous,
                                            find_flaky([*previous, *current]))}
    assert {t: v.verdict for t, v in verdicts.items()} == {
        "t::broken": Verdict.BROKEN, "t::fixed": Verdict.FIXED, "t::flaky": Verdict.FLAKY,
        "t::still": Verdict.STILL_FAILING, "t::new": Verdict.NEW_FAILURE,
        "t::rerun": Verdict.FLAKY}
    assert verdicts["t::broken"].changes == (
        "interpreter 3.13.0 → 3.13.1", "base image moved",
        "packages: attrs 23.1.0 → 24.2.0, +tomli 2.0.1")
    assert verdicts["t::broken"].previous_run == "n-02"
    assert verdicts["t::flaky"].changes == ()
    assert verdicts["t::flaky"].flaky_rate == 1.0  # failed, passed, failed: 2 flips in 2
    assert verdicts["t::new"].previous_run is None


def test_package_changes_are_listed_and_capped() -> None:
    before = {f"p{i}": "1" for i in range(12)}
    after = {**{f"p{i}": "2" for i in range(10)}, "new": "0.1"}
    text = package_changes(before, after, limit=3)
    assert text == "p0 1 → 2, p1 1 → 2, p2 1 → 2, and 10 more"


def test_observations_of_a_run_read_enum_outcomes() -> None:
    tests = (replace(case("t::a"), outcome=TestOutcome.FAILED),
             replace(case("t::b"), outcome=TestOutcome.PASSED))
    current = observations_of(run("n-09", cell("3.13-slim", tests)), seq=9,
                              packages={"3.13-slim": {"attrs": "23.1.0"}})
    assert [(o.test, o.outcome) for o in current] == [("t::a", "failed"), ("t::b", "passed")]
    assert current[0].inputs.packages == (("attrs", "23.1.0"),)
