from __future__ import annotations

import random

import pytest

from ..intervals import IntervalSet


@pytest.mark.parametrize(("added", "spans"), [
    ([(1, 3), (5, 7)], [(1, 3), (5, 7)]),
    ([(1, 3), (3, 5)], [(1, 5)]),
    ([(5, 7), (1, 3), (2, 6)], [(1, 7)]),
    ([(1, 10), (2, 3)], [(1, 10)]),
    ([(4, 4)], []),
])
def test_merge(added: list[tuple[int, int]], spans: list[tuple[int, int]]) -> None:
    intervals = IntervalSet()
    for start, end in added:
        intervals.add(start, end)
    assert intervals.spans() == spans


def test_against_a_set_of_points() -> None:
    rng = random.Random(5)
    intervals, points = IntervalSet(), set[int]()
    for _ in range(1500):
        start = rng.randrange(3000)
        end = start + rng.randrange(1, 40)
        intervals.add(start, end)
        points.update(range(start, end))
    assert intervals.total() == len(points)
    assert all((p in intervals) == (p in points) for p in range(3100))
