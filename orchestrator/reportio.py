"""Every report file of a run, written from its result, and read back for `report`."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from .errors import UsageError
from .files import atomic_write, write_json
from .junit_in import InvalidResults, parse_cell_suite
from .reports import html, junit, summary
from .results import RunResult, Status, load_results

log = logging.getLogger(__name__)


def write_reports(run: RunResult, reports: Path, *, step_summary: bool = True) -> None:
    """junit.xml, cells/<id>.xml, results.json, summary.md and index.html, each written
    atomically; summary.md is also appended to $GITHUB_STEP_SUMMARY when set."""
    atomic_write(reports / "junit.xml", junit.render(run.cells))
    for cell in run.cells:
        atomic_write(reports / "cells" / f"{cell.id}.xml", junit.render([cell], name=cell.id))
    write_json(reports / "results.json", run.to_json())
    text = summary.markdown(run)
    atomic_write(reports / "summary.md", text)
    atomic_write(reports / "index.html", html.render(run))
    github = os.environ.get("GITHUB_STEP_SUMMARY") if step_summary else None
    if github:
        with Path(github).open("a", encoding="utf-8") as handle:
            handle.write(text)


def rerender(reports: Path) -> RunResult:
    """`tagmatrix report`: every report again from results.json and cells/<id>.xml."""
    try:
        run = load_results(reports / "results.json")
    except FileNotFoundError as exc:
        raise UsageError(f"{reports}: no results.json (run `tagmatrix run` first)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{reports / 'results.json'}: not a tagmatrix results file "
                         f"({exc})") from exc
    cells = []
    for cell in run.cells:
        path = reports / "cells" / f"{cell.id}.xml"
        if not path.is_file():
            cells.append(cell)
            continue
        try:
            cases, output = parse_cell_suite(path.read_bytes(), cell.id)
        except InvalidResults as exc:
            log.warning("%s: %s", path, exc)
            cells.append(cell)
            continue
        cells.append(replace(cell, cases=tuple(cases), output_tail=output))
    run = replace(run, cells=tuple(cells))
    write_reports(run, reports, step_summary=False)
    return run


def previous_durations(reports: Path) -> dict[str, float]:
    """How long each cell's tests ran last time in this folder, for longest-first
    scheduling (the run time only: waiting for a slot says nothing of a cell's length)."""
    try:
        previous = load_results(reports / "results.json")
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {c.id: c.run_s for c in previous.cells if c.status in (Status.PASSED, Status.FAILED)}
