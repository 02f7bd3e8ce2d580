"""``tagmatrix history``: the runs as a table, a cell's or a test's outcomes over time.

Also the history's command-line options of ``tagmatrix run`` (``--history``,
``--no-history``), so cli.py only wires them in. Imports nothing heavy until a
command runs (the store and rich's tables come in then).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import Config
    from ..history.records import HistoryPoint, RunRecord
    from ..history.store import History

MARK = {"passed": ("✓", "green"), "failed": ("✗", "red"), "error": ("E", "magenta"),
        "timeout": ("T", "yellow"), "skipped": ("s", "dim"), "cancelled": ("c", "yellow")}
LEGEND = " ".join(f"{mark} {status}" for status, (mark, _) in MARK.items()) + " · absent"


def history_file(config: Config, given: str | None) -> Path:
    """``--history PATH``, else the matrix file's history.path, else the default."""
    return Path(given) if given else config.history.file(config.file)


def command(args: argparse.Namespace, console: Console,
            load: Callable[[argparse.Namespace], Config]) -> int:
    """``tagmatrix history``: exit 0; a missing or unusable history is a HistoryError (2)."""
    from ..history.store import History

    if args.last < 1:
        raise UsageError("--last must be at least 1")
    path = Path(args.history) if args.history else history_file(load(args), None)
    with History.open(path, readonly=True) as history:
        show(history, console, cells=args.cell, test=args.test, last=args.last,
             as_json=args.json)
    return 0


def show(history: History, console: Console, *, cells: str | None, test: str | None,
         last: int, as_json: bool) -> None:
    if test is not None:
        found = history.test_history(test, last=last, cells=cells)
        if as_json:
            console.out(json.dumps({"path": str(history.path), "tests": [
                {"test": name, "points": [_point(p) for p in found.points if p.test == name]}
                for name in found.tests], "omitted": found.omitted}, indent=2), highlight=False)
            return
        where = f"in the last {last} runs" + (f" of cells matching {cells!r}" if cells else "")
        _tests(console, found.tests, found.points, found.omitted, test, where=where)
        return
    runs = history.runs(last=last, cells=cells)
    if as_json:
        console.out(json.dumps({"path": str(history.path), "runs": [_run(r) for r in runs]},
                               indent=2), highlight=False)
        return
    if cells is not None:
        _cells(console, runs, cells)
    else:
        _runs(console, runs, str(history.path), history.count())


def _run(record: RunRecord) -> dict[str, Any]:
    return {"seq": record.seq, "run_id": record.run_id, "started_at": record.started_at,
            "duration_s": round(record.duration_s, 3), "profile": record.profile,
            "git_branch": record.git_branch, "git_commit": record.git_commit,
            "matrix_hash": record.matrix_hash, "cancelled": record.cancelled,
            "cells": [{"id": c.id, "status": c.status.value,
                       "interpreter": c.interpreter.version, "image_digest": c.image_digest,
                       "tests": {"total": c.tests.total, "failed": c.tests.failed,
                                 "errors": c.tests.errors},
                       "failing_tests": list(c.failing_tests)} for c in record.cells]}


def _point(point: HistoryPoint) -> dict[str, Any]:
    return {"seq": point.seq, "run_id": point.run_id, "started_at": point.started_at,
            "cell": point.cell, "outcome": point.outcome,
            "duration_s": round(point.duration_s, 3), "rerun": point.rerun}


def _mark(status: str) -> Text:
    symbol, style = MARK.get(status, ("?", ""))
    return Text(symbol, style=style)


def _runs(console: Console, runs: Sequence[RunRecord], path: str, total: int) -> None:
    from rich.table import Table

    console.print(f"{path}: the last {len(runs)} of {total} runs")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("#", "run", "started", "profile", "branch", "commit", "cells", "failing tests"):
        table.add_column(name, overflow="fold")
    for record in runs:
        counts = Counter(c.status.value for c in record.cells)
        cells = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        failing = sum(len(c.failing_tests) for c in record.cells)
        table.add_row(str(record.seq), record.run_id, record.started_at[:19].replace("T", " "),
                      record.profile or "-", record.git_branch or "-",
                      (record.git_commit or "-")[:10],
                      cells + (f" [yellow](cancelled: {record.cancelled})[/]"
                               if record.cancelled else ""), str(failing))
    console.print(table)


def _cells(console: Console, runs: Sequence[RunRecord], glob: str) -> None:
    """Each matching cell's status over the runs, oldest first."""
    ids = list(dict.fromkeys(c.id for r in runs for c in r.cells))
    if not ids:
        console.print(f"no cell matching {glob!r} in the history")
        return
    width = max(len(i) for i in ids)
    console.print(Text(f"{'cell':<{width}}  runs {runs[0].seq}..{runs[-1].seq}, oldest first "
                       f"({LEGEND})", style="bold"))
    for cell_id in ids:
        line = Text(f"{cell_id:<{width}}  ")
        for record in runs:
            found = next((c for c in record.cells if c.id == cell_id), None)
            line.append_text(_mark(found.status.value) if found else Text("·", style="dim"))
        latest = next((c for r in reversed(runs) for c in r.cells if c.id == cell_id), None)
        if latest is not None and latest.failing_tests:
            more = len(latest.failing_tests) - 3
            line.append(f"  last failing: {', '.join(latest.failing_tests[:3])}"
                        + (f", and {more} more (--json lists them all)" if more > 0 else ""),
                        style="dim")
        console.print(line)


def _tests(console: Console, tests: Sequence[str], points: Sequence[HistoryPoint],
           omitted: int, substring: str, *, where: str) -> None:
    """Each matching test, per cell: its outcomes over time and its times."""
    if not tests:
        console.print(f"no test matching {substring!r} in the history")
        return
    if not points:  # names match, but no result in the runs and cells asked for
        console.print(f"no result of a test matching {substring!r} {where}")
        return
    console.print(Text(f"per cell, oldest first ({LEGEND})", style="dim"))
    for name in tests:
        mine = [p for p in points if p.test == name]
        if not mine:
            console.print(Text.assemble((name, "bold"), (f"  no result {where}", "dim")))
            continue
        console.print(Text(name, style="bold"))
        cells = list(dict.fromkeys(p.cell for p in mine))
        width = max((len(c) for c in cells), default=4)
        for cell_id in cells:
            series = [p for p in mine if p.cell == cell_id]
            line = Text(f"  {cell_id:<{width}}  ")
            for point in series:
                line.append_text(_mark(point.outcome))
            bad = sum(1 for p in series if p.outcome in ("failed", "error"))
            passed = [p.duration_s for p in series if p.outcome == "passed"]
            line.append(f"  {bad} of {len(series)} failed", style="red" if bad else "dim")
            if passed:
                from statistics import median

                line.append(f"; median {median(passed):.2f} s, "
                            f"last {passed[-1]:.2f} s", style="dim")
            console.print(line)
    if omitted:
        console.print(f"... and {omitted} more tests match {substring!r} (narrow it down)")
