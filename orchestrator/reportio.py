"""Every report file of a run, written from its result, and read back for `report`."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import replace
from pathlib import Path

from .errors import UsageError
from .files import atomic_write, read_capped, write_json
from .junit_in import InvalidResults, parse_cell_suite
from .reportdir import ReportsFolder
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


# A cell's own report read back: its cases are capped (junit_in.MAX_CASES) and each text
# clipped when written, so a file past this was not written by tagmatrix.
CELL_FILE_BYTES = 512 * 1024 * 1024


def read_back(reports: Path) -> RunResult:
    """A run as its reports hold it: results.json and each cell's cases and output from
    cells/<id>.xml. Untrusted input: read with caps, ids checked (see results.py)."""
    try:
        run = load_results(reports / "results.json")
    except FileNotFoundError as exc:
        raise UsageError(f"{reports}: no results.json (run `tagmatrix run` first)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = "a symbolic link" if isinstance(exc, OSError) and exc.errno == errno.ELOOP \
            else exc
        raise UsageError(f"{reports / 'results.json'}: not a tagmatrix results file "
                         f"({why})") from exc
    cells = []
    for cell in run.cells:
        path = reports / "cells" / f"{cell.id}.xml"
        try:
            cases, output = parse_cell_suite(read_capped(path, CELL_FILE_BYTES), cell.id)
        except FileNotFoundError:
            cells.append(cell)
            continue
        except (OSError, ValueError, InvalidResults) as exc:
            log.warning("%s: %s", path, exc)
            cells.append(cell)
            continue
        cells.append(replace(cell, cases=tuple(cases), output_tail=output))
    return replace(run, cells=tuple(cells))


def rerender(reports: Path) -> RunResult:
    """`tagmatrix report`: every report again from results.json and cells/<id>.xml."""
    folder = ReportsFolder(reports)
    folder.lock("report", wait=False)
    try:
        run = read_back(reports)
        write_reports(run, reports, step_summary=False)
    finally:
        folder.unlock()
    return run


def merge_rerun(run: RunResult, reports: Path,
                matrix: frozenset[str]) -> tuple[RunResult, str]:
    """A --rerun-failed run merged into the folder's previous run: its cells replace
    theirs, the others stay as they were (their files too), each marked with the run it
    comes from; a cell no longer in the ``matrix`` (its cell ids now) is dropped. Only
    the same code merges: when the rerun built another project than the cells it would
    keep, the rerun stays alone and the second value says why."""
    if not (reports / "results.json").is_file():
        return run, ""
    try:
        previous = read_back(reports)
    except UsageError as exc:
        log.warning("not merging the rerun into the previous results: %s", exc)
        return run, ""
    fresh = {c.id: c for c in run.cells}
    gone = [c.id for c in previous.cells if c.id not in fresh and c.id not in matrix]
    if gone:
        log.warning("not carried over from run %s: %d cell(s) no longer in the matrix (%s)",
                    previous.run_id, len(gone), ", ".join(gone[:10])
                    + (f" and {len(gone) - 10} more" if len(gone) > 10 else ""))
    kept = [c for c in previous.cells if c.id not in fresh and c.id in matrix]
    now = {c.project_digest for c in run.cells if c.project_digest}
    then = {c.project_digest for c in kept if c.project_digest}
    if now and then and now != then:
        return run, (f"the project changed since run {previous.run_id} (its content digest "
                     f"{_short(then)} → {_short(now)}): its {len(kept)} other cell(s) tested "
                     "other code and were not carried over; run the whole matrix")
    carried = {c.id: replace(c, carried_from=c.carried_from or previous.run_id) for c in kept}
    cells = [fresh.pop(c.id) if c.id in fresh else carried[c.id] for c in previous.cells
             if c.id in fresh or c.id in carried]
    return replace(run, cells=(*cells, *fresh.values())), ""


def _short(digests: set[str]) -> str:
    return ", ".join(sorted(d.split(":", 1)[-1][:12] for d in digests))


def previous_durations(reports: Path) -> dict[str, float]:
    """How long each cell's tests ran last time in this folder, for longest-first
    scheduling (the run time only: waiting for a slot says nothing of a cell's length)."""
    try:
        previous = load_results(reports / "results.json")
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {c.id: c.run_s for c in previous.cells if c.status in (Status.PASSED, Status.FAILED)}
