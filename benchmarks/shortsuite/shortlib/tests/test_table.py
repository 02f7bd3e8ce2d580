from __future__ import annotations

import random

import pytest

from ..table import read_rows, summarise

CSV = """city,year,rain
Oslo,2020,760
Oslo,2021,810
Lima,2020,6
Lima,2021,12
Lima,2022,9
"""


def test_read_rows() -> None:
    rows = read_rows(CSV)
    assert rows[0] == {"city": "Oslo", "year": 2020.0, "rain": 760.0}
    assert len(rows) == 5


def test_summarise() -> None:
    summary = summarise(read_rows(CSV), "city", "rain")
    assert list(summary) == ["Lima", "Oslo"]
    assert summary["Lima"].count == 3
    assert summary["Lima"].median == 9.0
    assert summary["Oslo"].mean == pytest.approx(785.0)


def test_text_field_is_refused() -> None:
    with pytest.raises(TypeError, match="city"):
        summarise(read_rows(CSV), "year", "city")


def test_large_table() -> None:
    rng = random.Random(11)
    lines = ["group,value"] + [f"g{rng.randrange(20)},{rng.gauss(50, 10):.3f}"
                               for _ in range(20000)]
    summary = summarise(read_rows("\n".join(lines)), "group", "value")
    assert sum(s.count for s in summary.values()) == 20000
    assert all(40 < s.mean < 60 and 5 < s.stdev < 15 for s in summary.values())
