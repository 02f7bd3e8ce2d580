"""CSV text to typed rows, and group-by statistics."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    count: int
    mean: float
    median: float
    stdev: float


def read_rows(text: str) -> list[dict[str, str | float]]:
    """Numbers become floats; everything else stays text. Blank lines are skipped."""
    rows: list[dict[str, str | float]] = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, str | float] = {}
        for key, value in raw.items():
            try:
                row[key] = float(value)
            except ValueError:
                row[key] = value.strip()
        rows.append(row)
    return rows


def summarise(rows: list[dict[str, str | float]], by: str, field: str) -> dict[str, Summary]:
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        value = row[field]
        if not isinstance(value, float):
            raise TypeError(f"{field} is not numeric in {row}")
        groups[str(row[by])].append(value)
    return {key: Summary(len(values), statistics.fmean(values), statistics.median(values),
                         statistics.stdev(values) if len(values) > 1 else 0.0)
            for key, values in sorted(groups.items())}
