"""How a cell compares with a baseline run, as a value (see compare.py for the rules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Change(enum.StrEnum):
    """What happened to a cell, or to one of its tests, since the baseline."""

    NEW_FAILURE = "new failure"  # passed or absent before, fails now
    FIXED = "fixed"
    STILL_FAILING = "still failing"
    FLAKY = "flaky"  # passed on a retry, or reruns recorded in the JUnit
    UNCHANGED = "unchanged"
    NEW_CELL = "new cell"  # not in the baseline



@dataclass(frozen=True)
class Comparison:
    """A cell against the baseline: its own change, its tests' changes, and why."""

    cell: Change
    tests: tuple[tuple[Change, tuple[str, ...]], ...] = ()  # change -> test keys
    attribution: str = ""  # project changed, base image moved, both, neither

    def tests_of(self, change: Change) -> tuple[str, ...]:
        return next((keys for kind, keys in self.tests if kind is change), ())

    @property
    def regressed(self) -> bool:
        """A new failure of the cell or of one of its tests."""
        return self.cell is Change.NEW_FAILURE or bool(self.tests_of(Change.NEW_FAILURE))

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell.value, "tests": {k.value: list(v) for k, v in self.tests},
                "attribution": self.attribution}

    @classmethod
    def from_json(cls, data: Any) -> Comparison | None:
        """From results.json (untrusted: unknown kinds and shapes are dropped)."""
        if not isinstance(data, dict) or data.get("cell") not in {c.value for c in Change}:
            return None
        found = data.get("tests")
        tests: dict[str, Any] = found if isinstance(found, dict) else {}
        known = {c.value for c in Change}
        return cls(Change(data["cell"]),
                   tuple((Change(k), tuple(str(t) for t in v)) for k, v in tests.items()
                         if k in known and isinstance(v, list)),
                   str(data.get("attribution", ""))[:1000])
