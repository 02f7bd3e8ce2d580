"""Per-test slowdowns: across cells and against history, noise kept out."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.history.slowdown import (
    Against,
    Threshold,
    across_cells,
    against_history,
)

from .history_helpers import case, cell, run

DEFAULT = Threshold()
TIMES = "\N{MULTIPLICATION SIGN}"


def test_one_cell_slower_than_the_others_is_named_with_its_baseline_cell() -> None:
    current = run("n-01",
                  cell("3.12-slim", (case("t::parse", time=0.8), case("t::tiny", time=0.002))),
                  cell("3.13-slim", (case("t::parse", time=1.9), case("t::tiny", time=0.009))))
    [slow] = across_cells(current, DEFAULT)
    assert (slow.test, slow.cell, slow.against, slow.baseline_cell) == \
        ("t::parse", "3.13-slim", Against.CELL, "3.12-slim")
    assert slow.describe() == f"t::parse: 3.13-slim takes 2.4{TIMES} as long as 3.12-slim " \
                              "(0.8 s → 1.9 s)"
    assert slow.to_json() == {"test": "t::parse", "cell": "3.13-slim", "against": "cell",
                              "baseline_cell": "3.12-slim", "before_s": 0.8, "after_s": 1.9,
                              "ratio": 2.37, "runs": 0, "drift": 1.0}


def test_the_median_cell_is_the_baseline_and_failures_do_not_count() -> None:
    current = run("n-01",
                  cell("3.10-slim", (case("t::x", time=1.0),)),
                  cell("3.11-slim", (case("t::x", time=1.1),)),
                  cell("3.12-slim", (case("t::x", time=0.2),)),
                  cell("3.13-slim", (case("t::x", time=3.0),)),
                  cell("3.14-slim", (case("t::x", "failed", time=60.0),)))
    found = across_cells(current, DEFAULT)
    assert [(s.cell, s.baseline_cell, s.before_s) for s in found] == \
        [("3.13-slim", "3.10-slim", 1.0)]


def test_small_absolute_differences_are_not_slowdowns() -> None:
    current = run("n-01", cell("3.12-slim", (case("t::x", time=0.2),)),
                  cell("3.13-slim", (case("t::x", time=0.6),)))
    assert across_cells(current, DEFAULT) == []
    assert len(across_cells(current, Threshold(min_seconds=0.3))) == 1


def test_history_needs_enough_runs_and_uses_their_median() -> None:
    current = run("n-09", cell("3.13-slim", (case("t::x", time=2.5),)))
    assert against_history(current, {("t::x", "3.13-slim"): [1.0, 1.0]}, DEFAULT) == []
    # The last 5 only (7.0 is older); their median shrugs off the 9.0 among them.
    [slow] = against_history(current, {("t::x", "3.13-slim"): [7.0, 1.0, 9.0, 0.9, 1.1, 1.3]},
                             DEFAULT)
    assert (slow.against, slow.before_s, slow.runs) == (Against.HISTORY, 1.1, 5)
    assert slow.describe() == f"t::x: 3.13-slim takes 2.3{TIMES} as long as in its last 5 runs " \
                              "(median 1.1 s → 2.5 s)"


def test_a_uniformly_slower_runner_is_drift_not_slowdowns() -> None:
    tests = [f"t::t{i}" for i in range(8)]
    history = {(t, "3.13-slim"): [1.0, 1.0, 1.0] for t in tests}
    slower = run("n-09", cell("3.13-slim", (*(case(t, time=2.2) for t in tests[:-1]),
                                            case(tests[-1], time=6.0))))
    [outlier] = against_history(slower, history, DEFAULT)
    assert (outlier.test, round(outlier.drift, 1)) == ("t::t7", 2.2)
    assert outlier.describe().endswith(
        f"(median 1.0 s → 6.0 s; the whole cell ran 2.2{TIMES} slower)")


@pytest.mark.parametrize(("data", "key"), [
    ([], "slowdown"),
    ({"ratio": 0.5}, "slowdown.ratio"),
    ({"min_seconds": "1"}, "slowdown.min_seconds"),
    ({"history_runs": 2.5}, "slowdown.history_runs"),
    ({"min_history": 9}, "slowdown.min_history"),
    ({"ratio": True}, "slowdown.ratio"),
    ({"speed": 2}, "slowdown"),
])
def test_threshold_config_errors_name_the_key(data: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Threshold.from_mapping(data)
    assert caught.value.key == key


def test_threshold_config() -> None:
    assert Threshold.from_mapping(None) == DEFAULT
    assert Threshold.from_mapping({"ratio": 3, "min_seconds": 0.2}) == \
        Threshold(ratio=3, min_seconds=0.2)
