"""Reading per-test rows out of the history: the queries behind the analyses.

Functions over an open connection (:class:`~orchestrator.history.store.History`
wraps them as methods, with its error translation). Work is bounded whatever
the history holds: cells whose run was an *incident* (see
:func:`~orchestrator.history.flaky.is_incident`) are left out of the evidence,
and at most ``limit`` candidate tests are looked at.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple

from .flaky import INCIDENT_MIN_TESTS, CellInputs, Observation
from .records import Scope

OUTCOMES = {0: "passed", 1: "failed", 2: "error", 3: "skipped"}
LATEST = 2**62  # a run seq after every recorded run
# SQL for "this cell row was an incident"; the constants are ours, not input.
_INCIDENT = f"(bad * 2 > total AND total >= {INCIDENT_MIN_TESTS})"
_NO_INCIDENTS = f" AND cell NOT IN (SELECT id FROM cell WHERE {_INCIDENT})"  # noqa: S608
_LATEST_CELL = f"SELECT max(id) FROM cell WHERE cell_id = ? AND run <= ? AND NOT {_INCIDENT}"  # noqa: S608
# The partial index result_bad serves the first condition: only failures are read.
_CANDIDATES = " ".join((
    "SELECT test.name, count(*) AS n FROM result JOIN test ON test.id = result.test",
    "WHERE (outcome IN (1, 2) OR rerun = 1) AND cell BETWEEN ? AND ?", _NO_INCIDENTS,
    "{scoped} GROUP BY result.test ORDER BY n DESC, test.name"))
_CELL_ROWS = ("SELECT cell.id, cell.cell_id, run.id, run.run_id, run.started_at,"
              " cell.project_digest, cell.image_digest, cell.interpreter, cell.packages"
              " FROM cell JOIN run ON run.id = cell.run WHERE run.id BETWEEN ? AND ?")


class Where(NamedTuple):
    """Where a result row belongs: its cell, its run, what went into the cell."""

    cell: str
    seq: int
    run_id: str
    started_at: str
    inputs: CellInputs


def seq_of(db: sqlite3.Connection, run_id: str | None) -> int | None:
    """The place of ``run_id`` in the history (None: not recorded, or not asked)."""
    if run_id is None:
        return None
    row = db.execute("SELECT id FROM run WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0]) if row else None


def in_scope(scope: Scope | None) -> tuple[str, tuple[Any, ...]]:
    """A condition on the run table's columns keeping the runs of ``scope`` (all: None)."""
    return scope.sql() if scope is not None else ("1", ())


def _cells_in(scope: Scope | None) -> tuple[str, tuple[Any, ...]]:
    """`` AND <cell rows of runs in scope>`` for a query on the cell table."""
    if scope is None:
        return "", ()
    where, params = scope.sql()
    # ``where`` is Scope.sql()'s fixed text; the values are parameters
    return f" AND run IN (SELECT id FROM run WHERE {where})", params  # noqa: S608


def window(db: sqlite3.Connection, last: int | None, before: str | None,
           scope: Scope | None = None) -> tuple[int, int]:
    """(lowest, highest) run seq of the last ``last`` runs of ``scope`` recorded before run
    ``before`` (runs of other scopes may lie between: filter on the scope as well)."""
    seq = seq_of(db, before)
    high = seq - 1 if seq is not None else LATEST
    if last is None:
        return 0, high
    where, params = in_scope(scope)
    row = db.execute(f"SELECT id FROM run WHERE id <= ? AND {where} "  # noqa: S608
                     "ORDER BY id DESC LIMIT 1 OFFSET ?", (high, *params, last - 1)).fetchone()
    return (int(row[0]) if row else 0), high


def packages(db: sqlite3.Connection, ids: Collection[int]) -> dict[int, dict[str, str]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {int(i): json.loads(text) for i, text in db.execute(
        f"SELECT id, json FROM packages WHERE id IN ({marks})", tuple(ids))}  # noqa: S608


def cell_rows(db: sqlite3.Connection, low: int, high: int, *, incidents: bool = True,
              only: Collection[int] | None = None,
              scope: Scope | None = None) -> dict[int, Where]:
    """cell row id -> :class:`Where`, for the runs ``low``..``high`` of ``scope`` (or the
    rows ``only``)."""
    where, params = in_scope(scope)
    query = _CELL_ROWS + ("" if incidents else f" AND NOT {_INCIDENT}") + f" AND {where}"
    rows = [r for r in db.execute(query, (low, high, *params)) if only is None or r[0] in only]
    sets = {i: tuple(sorted(p.items()))
            for i, p in packages(db, {r[8] for r in rows if r[8] is not None}).items()}
    interned: dict[tuple[Any, ...], CellInputs] = {}
    out = {}
    for row_id, cell_id, seq, run_id, started, project, image, interpreter, pkg in rows:
        key = (project, image, interpreter, pkg)
        if key not in interned:  # 4,800 cells share a handful of these
            interned[key] = CellInputs(project=project, image=image, interpreter=interpreter,
                                       packages=sets.get(pkg) if pkg is not None else None)
        out[row_id] = Where(cell_id, seq, run_id, started, interned[key])
    return out


def points(db: sqlite3.Connection, tests: Mapping[int, str], cells: Mapping[int, Where],
           glob: str | None = None) -> Iterator[tuple[str, int, int, int, Where]]:
    """(test, outcome code, rerun, ms, where) of ``tests`` in the cell rows ``cells``."""
    if not cells:
        return
    low, high = min(cells), max(cells)
    for test_id, name in tests.items():
        # One range of the primary key per test (cell ids grow with time).
        for cell, outcome, rerun, ms in db.execute(
                "SELECT cell, outcome, rerun, duration_ms FROM result WHERE test = ? AND "
                "cell BETWEEN ? AND ? ORDER BY cell", (test_id, low, high)):
            where = cells.get(cell)
            if where is not None and (glob is None or fnmatch.fnmatchcase(where.cell, glob)):
                yield name, outcome, rerun, ms, where


def _observations(db: sqlite3.Connection, tests: Mapping[int, str],
                  cells: Mapping[int, Where]) -> list[Observation]:
    return [Observation(test=name, cell=where.cell, seq=where.seq, run_id=where.run_id,
                        outcome=OUTCOMES.get(outcome, "error"), rerun=bool(rerun),
                        inputs=where.inputs)
            for name, outcome, rerun, _, where in points(db, tests, cells)]


def flaky_candidates(db: sqlite3.Connection, *, last: int | None = None,
                     before: str | None = None, limit: int = 200,
                     scope: Scope | None = None) -> tuple[list[str], int]:
    """Tests that failed, errored or needed a rerun in the window of ``scope``, outside
    incidents (the only ones that can have flipped), the most often first; and how many
    more there were."""
    low, high = window(db, last, before, scope)
    cells, params = _cells_in(scope)
    bounds = db.execute(f"SELECT min(id), max(id) FROM cell WHERE run BETWEEN ? AND ?{cells}",  # noqa: S608
                        (low, high, *params)).fetchone()
    if bounds[0] is None:
        return [], 0
    # other scopes' cell rows may lie between the bounds: the scope's own ones only
    scoped = f"AND cell IN (SELECT id FROM cell WHERE run BETWEEN ? AND ?{cells})" \
        if scope is not None else ""  # noqa: S608
    ranked = db.execute(_CANDIDATES.format(scoped=scoped),
                        (*bounds, *((low, high, *params) if scope else ()))).fetchall()
    return [str(r[0]) for r in ranked[:limit]], max(len(ranked) - limit, 0)


def observations(db: sqlite3.Connection, tests: Collection[str], *, last: int | None = None,
                 before: str | None = None, scope: Scope | None = None) -> list[Observation]:
    """Every result of ``tests`` in the last ``last`` runs of ``scope`` before ``before``,
    incidents left out (for flakiness and quarantine)."""
    wanted = set(tests)
    ids = {int(i): str(n) for i, n in db.execute("SELECT id, name FROM test") if n in wanted}
    return _observations(db, ids, cell_rows(db, *window(db, last, before, scope),
                                            incidents=False, scope=scope))


def previous_observations(db: sqlite3.Connection, cells: Collection[str], *,
                          before: str | None = None,
                          tests: Collection[str] | None = None,
                          scope: Scope | None = None) -> list[Observation]:
    """Results of each cell's latest record (not an incident) in a run of ``scope`` before
    ``before``: every one, or (``tests`` given) those that failed, errored or were rerun
    plus every result of ``tests``: what a verdict on this run's changes needs."""
    high = window(db, None, before)[1]
    scoped, params = _cells_in(scope)
    latest = []
    for cell_id in cells:
        row = db.execute(_LATEST_CELL + scoped, (cell_id, high, *params)).fetchone()
        if row[0] is not None:
            latest.append(int(row[0]))
    if not latest:
        return []
    marks = ",".join("?" * len(latest))
    seqs = db.execute(f"SELECT min(run), max(run) FROM cell WHERE id IN ({marks})",  # noqa: S608
                      latest).fetchone()
    names = dict(db.execute("SELECT id, name FROM test").fetchall())
    wanted = None if tests is None else set(tests)
    ids = [i for i, n in names.items() if wanted is None or n in wanted]
    out = []
    for row_id, where in cell_rows(db, seqs[0], seqs[1], only=set(latest)).items():
        rows = {test_id: (outcome, rerun) for test_id, outcome, rerun in db.execute(
            "SELECT test, outcome, rerun FROM result WHERE (outcome IN (1, 2) OR rerun = 1)"
            " AND cell = ?", (row_id,))} if wanted is not None else {}  # the partial index
        for test_id in ids:  # one seek each: the cells' records may be far apart in time
            found = db.execute("SELECT outcome, rerun FROM result WHERE test = ? AND cell = ?",
                               (test_id, row_id)).fetchone()
            if found is not None:
                rows[test_id] = found
        out += [Observation(test=names[test_id], cell=where.cell, seq=where.seq,
                            run_id=where.run_id, outcome=OUTCOMES.get(outcome, "error"),
                            rerun=bool(rerun), inputs=where.inputs)
                for test_id, (outcome, rerun) in rows.items()]
    return out


def durations(db: sqlite3.Connection, cells: Collection[str], *, runs: int = 5,
              before: str | None = None,
              scope: Scope | None = None) -> dict[tuple[str, str], list[float]]:
    """(test, cell id) -> seconds of its passing results in that cell's last ``runs``
    records in runs of ``scope`` before the run ``before``, oldest first (the history side
    of slowdowns)."""
    high = window(db, None, before)[1]
    scoped, params = _cells_in(scope)
    chosen: dict[int, str] = {}
    for cell_id in cells:
        chosen.update((int(r[0]), cell_id) for r in db.execute(
            f"SELECT id FROM cell WHERE cell_id = ? AND run <= ?{scoped} "  # noqa: S608
            "ORDER BY id DESC LIMIT ?", (cell_id, high, *params, runs)))
    if not chosen:
        return {}
    names = dict(db.execute("SELECT id, name FROM test").fetchall())
    out: dict[tuple[str, str], list[float]] = {}
    for test_id, cell, ms in db.execute(
            "SELECT test, cell, duration_ms FROM result WHERE test IN (SELECT id FROM test)"
            " AND cell BETWEEN ? AND ? AND outcome = 0 ORDER BY test, cell",
            (min(chosen), max(chosen))):
        which = chosen.get(cell)
        if which is not None:
            out.setdefault((names[test_id], which), []).append(ms / 1000)
    return out
