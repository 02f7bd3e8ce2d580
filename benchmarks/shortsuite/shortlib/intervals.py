"""Sets of half-open integer intervals [start, end)."""

from __future__ import annotations

import bisect


class IntervalSet:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)  # first interval that may touch
        j = bisect.bisect_right(self._starts, end)  # past the last one that may touch
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def __contains__(self, point: int) -> bool:
        i = bisect.bisect_right(self._starts, point) - 1
        return i >= 0 and point < self._ends[i]

    def spans(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))
