"""The history's keys of matrix.yaml: ``history:``, ``quarantine:`` and ``slowdown:``.

::

    history:
      keep: 200                 # runs kept; older ones are pruned when a run is recorded
      path: .tagmatrix/history.db   # relative to this file (the default)
    quarantine:
      - {test: "tests.test_net::test_timeout*", until: 2026-12-31,
         cells: ["python=3.15*"], reason: "https://github.com/org/proj/issues/123"}
    slowdown: {ratio: 2.0, min_seconds: 0.5}

The JSON Schema checks the shapes; this module what a schema cannot say (dates,
selectors, min_history <= history_runs), through the config reader's located
errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ErrorFactory, unlocated
from .quarantine import QuarantineEntry, SelectorReader, parse_quarantine
from .slowdown import Threshold

DEFAULT_KEEP = 200  # runs kept; older ones are pruned when a run is recorded
# a ceiling, so a typo (keep: 2000000000) is an error, not a file that only grows:
# 10,000 nightly runs are 27 years; the history benchmark measures the default
MAX_KEEP = 10_000
DEFAULT_PATH = Path(".tagmatrix") / "history.db"  # relative to matrix.yaml's folder
SCHEMA: dict[str, Any] = {  # the keys' JSON Schema (orchestrator/schema.py takes it)
    "history": {
        "type": "object",
        "additionalProperties": False,
        "description": "The run history (README: Nightly runs that remember).",
        "properties": {
            "keep": {"type": "integer", "minimum": 1, "maximum": MAX_KEEP,
                     "description": f"Runs kept (default {DEFAULT_KEEP}, at most {MAX_KEEP}); "
                                    "older ones are pruned when a run is recorded."},
            "path": {"type": "string", "minLength": 1,
                     "description": f"The history file, relative to this file (default "
                                    f"{DEFAULT_PATH.as_posix()})."},
        },
    },
    "quarantine": {
        "type": "array",
        "description": "Tests that run and report but do not gate, until a date.",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["test", "until"],
            "properties": {
                "test": {"type": "string", "minLength": 1,
                         "description": "A glob on test ids (classname::name)."},
                # a date: YAML reads 2026-12-31 as one, so no "type" here
                "until": {"description": "The last day the entry holds: 2026-12-31."},
                "cells": {"type": "array", "minItems": 1,
                          "items": {"type": ["string", "object"], "minProperties": 1,
                                    "additionalProperties": {
                                        "type": ["string", "number", "boolean"]}},
                          "description": "Only in these cells (selectors, as allow_failure)."},
                "reason": {"type": "string", "description": "Why, e.g. an issue's URL."},
            },
        },
    },
    "slowdown": {
        "type": "object",
        "additionalProperties": False,
        "description": "When a test counts as slower (reports, and --fail-on slowdowns).",
        "properties": {
            "ratio": {"type": "number", "minimum": 1,
                      "description": "At least this many times as long (default 2.0)."},
            "min_seconds": {"type": "number", "minimum": 0,
                            "description": "And at least this many seconds longer "
                                           "(default 0.5)."},
            "history_runs": {"type": "integer", "minimum": 1,
                             "description": "Runs of the cell's history whose median is "
                                            "compared (default 5)."},
            "min_history": {"type": "integer", "minimum": 1,
                            "description": "Fewer earlier runs than this: no comparison "
                                           "with the history (default 3)."},
        },
    },
}


@dataclass(frozen=True, kw_only=True)
class HistorySettings:
    """What matrix.yaml says about the history and what it is used for."""

    keep: int = DEFAULT_KEEP
    path: Path | None = None  # history.path, resolved; None: .tagmatrix/history.db
    quarantine: tuple[QuarantineEntry, ...] = ()
    slowdown: Threshold = field(default_factory=Threshold)

    def file(self, matrix_file: Path) -> Path:
        """Where the history is: history.path, else .tagmatrix/history.db beside the file."""
        return self.path or matrix_file.parent / DEFAULT_PATH


def read_settings(data: Mapping[str, Any], base: Path, *, error: ErrorFactory = unlocated,
                  selectors: SelectorReader | None = None) -> HistorySettings:
    """The three sections of validated matrix.yaml ``data`` (``base``: the file's folder)."""
    section = data.get("history") or {}
    path = section.get("path")
    return HistorySettings(
        keep=int(section.get("keep", DEFAULT_KEEP)),
        path=(base / path) if path else None,
        quarantine=parse_quarantine(data.get("quarantine"), error=error, selectors=selectors),
        slowdown=Threshold.from_mapping(data.get("slowdown"), error=error))
