"""Slowdowns on synthetic timings shaped like the runs that misled a user: a cold first
run of click, MarkupSafe's tiny tests on a slow cell, and many random nights with slow
whole cells. Whole cells that ran slower flag nothing; one test 3x slower on one
interpreter is still found, across cells and against the history."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator.history.slowdown import (
    Against,
    Slowdown,
    Threshold,
    across_cells,
    against_history,
    speed,
)
from orchestrator.results import RunResult

from .history_helpers import case, cell, run

DEFAULT = Threshold()
CELLS = ("3.10-slim", "3.11-slim", "3.12-slim", "3.13-slim")


def _cells(times: dict[str, dict[str, float]]) -> RunResult:
    """{cell: {test: seconds}} -> a run in which every test passed."""
    return run("n-01", *(cell(cell_id, tuple(case(t, time=s) for t, s in tests.items()))
                         for cell_id, tests in times.items()))


def _suite(rng: random.Random, count: int, low: float, high: float) -> dict[str, float]:
    """``count`` tests with warm times spread log-uniformly from ``low`` to ``high``."""
    return {f"tests.test_s::t{i}": low * (high / low) ** rng.random() for i in range(count)}


def _noisy(warm: dict[str, float], factor: float, rng: random.Random) -> dict[str, float]:
    """A cell that ran ``factor`` times slower than warm, each test with its own jitter,
    rounded to JUnit's milliseconds."""
    return {t: round(s * factor * rng.lognormvariate(0, 0.15), 3) for t, s in warm.items()}


def test_a_cold_cell_of_click_flags_nothing() -> None:
    """click's first run: 3.13-slim ran everything about 2.7x slower (cold), so its
    invoke test took 3.1 s against 1.0 s on 3.11, and a subprocess test 85 ms -> 0.6 s."""
    rng = random.Random(1)
    warm = _suite(rng, 60, 0.002, 0.3)
    warm |= {"tests.test_basic::test_invoke": 1.0, "tests.test_utils::test_path_dash": 0.085}
    times = {c: _noisy(warm, 1.0, rng) for c in CELLS[1:3]}
    times["3.13-slim"] = _noisy(warm, 2.7, rng)
    times["3.13-slim"] |= {"tests.test_basic::test_invoke": 3.1,
                           "tests.test_utils::test_path_dash": 0.6}
    cold = _cells(times)
    assert across_cells(cold, DEFAULT) == []
    # the factor said alongside is the cell's: about 2.7
    assert 2.3 < speed([(times["3.11-slim"][t], times["3.13-slim"][t]) for t in warm]) < 3.2


def test_a_slow_cell_of_tiny_tests_flags_nothing() -> None:
    """MarkupSafe: nearly every test under 10 ms; 3.10-slim ran all of them about 8x
    slower, test_markup_leaks (0.15 s elsewhere) included. The cell's speed is read from
    the tests of at least 1 ms."""
    rng = random.Random(2)
    warm = _suite(rng, 150, 0.001, 0.006) | {"tests.test_leak::test_markup_leaks": 0.15}
    times = {c: _noisy(warm, 1.0, rng) for c in CELLS[1:]}
    times["3.10-slim"] = _noisy(warm, 8.0, rng)
    assert across_cells(_cells(times), DEFAULT) == []
    history = {(t, "3.10-slim"): [s, s, s] for t, s in warm.items()}  # its warm nights
    tonight = _cells({"3.10-slim": times["3.10-slim"]})
    assert against_history(tonight, history, DEFAULT) == []


def test_a_test_3x_slower_on_one_interpreter_is_still_found() -> None:
    rng = random.Random(3)
    warm = _suite(rng, 60, 0.002, 0.3) | {"tests.test_render::test_report": 0.8}
    times = {c: _noisy(warm, 1.0, rng) for c in CELLS}
    times["3.13-slim"]["tests.test_render::test_report"] = 2.4
    [found] = across_cells(_cells(times), DEFAULT)
    assert (found.test, found.cell, found.against) == \
        ("tests.test_render::test_report", "3.13-slim", Against.CELL)
    history = {(t, "3.13-slim"): [s, s * 1.1, s * 0.9] for t, s in warm.items()}
    [again] = against_history(_cells({"3.13-slim": times["3.13-slim"]}), history, DEFAULT)
    assert (again.test, again.against, again.runs) == \
        ("tests.test_render::test_report", Against.HISTORY, 3)


def test_a_test_3x_slower_in_a_cell_that_also_ran_slower_is_found_and_explained() -> None:
    rng = random.Random(4)
    warm = _suite(rng, 60, 0.002, 0.3) | {"tests.test_render::test_report": 1.0}
    times = {c: _noisy(warm, 1.0, rng) for c in CELLS[:3]}
    times["3.13-slim"] = _noisy(warm, 1.5, rng)
    times["3.13-slim"]["tests.test_render::test_report"] = 4.5  # 3x beyond the cell's 1.5x
    [found] = across_cells(_cells(times), DEFAULT)
    assert (found.test, found.cell) == ("tests.test_render::test_report", "3.13-slim")
    assert 1.3 < found.drift < 1.7
    assert found.describe().endswith(f"; the whole cell ran {found.drift:.1f}"
                                     "\N{MULTIPLICATION SIGN} slower)")


def test_extra_seconds_count_after_the_cells_speed_is_taken_out() -> None:
    """0.4 s -> 1.7 s is 1.3 s more, but the cell ran 2x slower: 0.85 s, 0.45 s more."""
    warm = {f"t::n{i}": 0.05 for i in range(8)} | {"t::x": 0.4}
    slow = {t: s * 2 for t, s in warm.items()} | {"t::x": 1.7}
    assert across_cells(_cells({"3.12-slim": warm, "3.13-slim": slow}), DEFAULT) == []
    history = {(t, "3.13-slim"): [s] * 3 for t, s in warm.items()}
    assert against_history(_cells({"3.13-slim": slow}), history, DEFAULT) == []


def test_a_faster_cell_never_makes_a_test_slower() -> None:
    warm = {f"t::n{i}": 0.2 for i in range(8)} | {"t::x": 1.0}
    fast = {t: s / 3 for t, s in warm.items()} | {"t::x": 1.0}  # x as slow as elsewhere
    assert across_cells(_cells({"3.12-slim": warm, "3.13-slim": warm, "3.14-slim": fast}),
                        DEFAULT) == []


@dataclass(frozen=True)
class Night:
    """One synthetic run: its cells' times, the history of each cell, and the one slowdown
    put in on purpose (None: none)."""

    run: RunResult
    history: dict[tuple[str, str], list[float]]
    planted: tuple[str, str] | None  # (test, cell)


def nights(count: int = 200, seed: int = 16) -> Iterator[Night]:
    """Random nights: 3 or 4 cells, each running 1x to 3.5x slower than warm as a whole
    (cold caches, a busy neighbour) with 15 % jitter per test, in milliseconds; every
    other night, one test of at least 0.4 s takes 3x as long in one cell. Each cell's
    history: 5 nights, each 1x to 1.5x slower than warm."""
    rng = random.Random(seed)
    for number in range(count):
        warm = _suite(rng, rng.choice((20, 60, 200)), 0.001, 1.5)
        cells = CELLS[:rng.choice((3, 4))]
        factors = {c: rng.uniform(1.0, 3.5) for c in cells}
        times = {c: _noisy(warm, factors[c], rng) for c in cells}
        planted = None
        if number % 2:
            test = rng.choice([t for t, s in warm.items() if s >= 0.4] or list(warm))
            # in the cell that ran slowest as a whole: the case where normalising must
            # not hide it. (3x in a fast cell may take no longer than elsewhere, which
            # cannot be told from a test that does not scale with its cell's speed, a
            # sleep or a timeout: the across-cell check leaves that to the history.)
            where = max(cells, key=factors.__getitem__)
            if warm[test] >= 0.4:  # 3x what it takes in its cell tonight
                times[where][test] = round(3 * times[where][test], 3)
                planted = (test, where)
        history: dict[tuple[str, str], list[float]] = {}
        for c in cells:
            for _ in range(5):
                for t, s in _noisy(warm, rng.uniform(1.0, 1.5), rng).items():
                    history.setdefault((t, c), []).append(s)
        yield Night(_cells({c: times[c] for c in cells}), history, planted)


def tally(found: list[Slowdown], planted: tuple[str, str] | None) -> tuple[int, int]:
    """(false positives, planted slowdowns found) of one night's findings."""
    hits = [s for s in found if (s.test, s.cell) == planted]
    return len(found) - len(hits), int(bool(hits))


def test_random_nights_with_slow_cells_flag_almost_only_the_planted_slowdowns() -> None:
    """Before normalising, these 200 nights flagged 619 tests across cells (81 nights of
    200 had one); the few left are the 15 % jitter's tails: a test 2x slower than in the
    other cell once both cells' speeds are out. A planted 3x is missed only when jitter
    brings it below 2x against its baseline cell (6 of 100)."""
    false_cell = false_history = found_cell = found_history = planted = 0
    for night in nights():
        false, hit = tally(across_cells(night.run, DEFAULT), night.planted)
        false_cell, found_cell = false_cell + false, found_cell + hit
        false, hit = tally(against_history(night.run, night.history, DEFAULT), night.planted)
        false_history, found_history = false_history + false, found_history + hit
        planted += night.planted is not None
    assert planted == 100
    assert false_cell <= 2
    assert false_history == 0
    assert found_cell >= 90
    assert found_history >= 95
