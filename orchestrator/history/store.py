"""The run history: record a run in one transaction, prune, and ask it questions.

One writer at a time: every write is ``BEGIN IMMEDIATE`` under a busy timeout,
so two tagmatrix processes sharing a history take turns; readers never wait
(WAL). Queries return runs oldest first, as series over time read.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..results import CellResult, RunResult
from .errors import HistoryError
from .flaky import CellInputs, Observation, outcome_text, test_name
from .records import HistoryPoint, Recorded, RunMeta, RunRecord, TestHistory
from .schema import DEFAULT_TIMEOUT, open_connection, translate

DEFAULT_KEEP = 200  # runs kept; older ones are pruned when a run is recorded
DEFAULT_PATH = Path(".tagmatrix") / "history.db"  # relative to matrix.yaml's folder
_CODES = {"passed": 0, "failed": 1, "error": 2, "skipped": 3}
_OUTCOMES = {code: text for text, code in _CODES.items()}
_RANK = {"skipped": 0, "passed": 1, "failed": 2, "error": 3}  # which duplicate wins
_MAX_PACKAGES = 5000
_RUN_COLUMNS = ("id, run_id, started_at, finished_at, duration_s, config, profile, matrix_hash,"
                " git_commit, git_branch, cancelled, baseline, recorded_at")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _packages_json(packages: Mapping[str, str]) -> str:
    items = sorted((str(k)[:200], str(v)[:200]) for k, v in packages.items())
    return json.dumps(dict(items[:_MAX_PACKAGES]), separators=(",", ":"), sort_keys=True)


def _cell_json(cell: CellResult) -> str:
    """The cell's results.json entry. Its cases are dropped first: to_json() would convert
    every case with asdict() only to delete them (0.1 s per 2,000-test cell)."""
    return json.dumps(replace(cell, cases=(), output_tail="").to_json(), separators=(",", ":"))


def _results(cell: CellResult) -> dict[str, tuple[int, int, int]]:
    """name -> (outcome code, rerun, milliseconds); a duplicate keeps the worse outcome."""
    rows: dict[str, tuple[str, bool, float]] = {}
    for case in cell.cases:
        name, outcome = test_name(case.key), outcome_text(case.outcome)
        outcome = outcome if outcome in _CODES else "error"  # unknown: not a pass
        old = rows.get(name)
        if old is None or _RANK[outcome] > _RANK[old[0]]:
            rows[name] = (outcome, case.flaky or (old is not None and old[1]), case.time)
    # A run read back from results.json has no cases, only the failing and flaky keys.
    for key in cell.failing_tests:
        rows.setdefault(test_name(key), ("failed", False, 0.0))
    for key in cell.flaky_tests:
        rows.setdefault(test_name(key), ("passed", True, 0.0))
    return {name: (_CODES[o], int(r), round(t * 1000)) for name, (o, r, t) in rows.items()}


class History:
    """An open history file. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._db = connection

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False,
             timeout: float = DEFAULT_TIMEOUT) -> History:
        """See :func:`orchestrator.history.schema.open_connection` for what is refused."""
        return cls(path, open_connection(path, readonly=readonly, timeout=timeout),
                   readonly=readonly)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._db
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise HistoryError(self.path, "opened read-only")
        with self._guard() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------

    def record(self, run: RunResult, meta: RunMeta, *, keep: int = DEFAULT_KEEP) -> Recorded:
        """Keep ``run`` (replacing an earlier record of the same run id), then prune the
        history to the ``keep`` most recently recorded runs. One transaction: another
        process sees all of it or nothing."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        with self._write() as db:
            old = db.execute("SELECT id FROM run WHERE run_id = ?", (run.run_id,)).fetchone()
            if old is not None:
                self._delete_run(db, int(old[0]))
            seq = int(db.execute(
                "INSERT INTO run (run_id, started_at, finished_at, duration_s, config, profile,"
                " matrix_hash, git_commit, git_branch, cancelled, baseline, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.started_at, run.finished_at, run.duration_s, run.config,
                 run.profile, meta.matrix_hash, meta.git_commit, meta.git_branch,
                 run.cancelled, run.baseline, meta.recorded_at or _now())).lastrowid or 0)
            names = dict(db.execute("SELECT name, id FROM test").fetchall())
            rows: list[tuple[int, int, int, int, int]] = []
            for cell in run.cells:
                packages = meta.packages.get(cell.id)
                cell_row = db.execute(
                    "INSERT INTO cell (run, cell_id, status, image_digest, interpreter,"
                    " project_digest, packages, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, cell.id, str(cell.status.value), cell.image_digest,
                     cell.interpreter.version, cell.project_digest,
                     self._intern_packages(db, packages) if packages is not None else None,
                     _cell_json(cell))).lastrowid or 0
                for name, (outcome, rerun, ms) in _results(cell).items():
                    if name not in names:
                        names[name] = int(db.execute("INSERT INTO test (name) VALUES (?)",
                                                     (name,)).lastrowid or 0)
                    rows.append((names[name], cell_row, outcome, rerun, ms))
            rows.sort()  # appends at the end of each test's range, in key order
            db.executemany("INSERT INTO result VALUES (?, ?, ?, ?, ?)", rows)
            pruned = [int(r[0]) for r in db.execute(
                "SELECT id FROM run ORDER BY id DESC LIMIT -1 OFFSET ?", (keep,))]
            for old_seq in pruned:
                self._delete_run(db, old_seq)
            if pruned or old is not None:
                db.execute("DELETE FROM test WHERE NOT EXISTS "
                           "(SELECT 1 FROM result WHERE result.test = test.id)")
                db.execute("DELETE FROM packages WHERE id NOT IN "
                           "(SELECT packages FROM cell WHERE packages IS NOT NULL)")
        return Recorded(seq=seq, tests=len(rows), pruned=len(pruned))

    @staticmethod
    def _intern_packages(db: sqlite3.Connection, packages: Mapping[str, str]) -> int:
        text = _packages_json(packages)
        digest = hashlib.sha256(text.encode()).hexdigest()
        found = db.execute("SELECT id FROM packages WHERE digest = ?", (digest,)).fetchone()
        if found is not None:
            return int(found[0])
        return int(db.execute("INSERT INTO packages (digest, json) VALUES (?, ?)",
                              (digest, text)).lastrowid or 0)

    @staticmethod
    def _delete_run(db: sqlite3.Connection, seq: int) -> None:
        # A run's cells have consecutive ids (written in one transaction), so its results
        # are one short range at the same place in every test's range of the primary key.
        low, high = db.execute("SELECT min(id), max(id) FROM cell WHERE run = ?",
                               (seq,)).fetchone()
        if low is not None:
            db.execute("DELETE FROM result WHERE test IN (SELECT id FROM test) "
                       "AND cell BETWEEN ? AND ?", (low, high))
        db.execute("DELETE FROM cell WHERE run = ?", (seq,))
        db.execute("DELETE FROM run WHERE id = ?", (seq,))

    # -- reading -----------------------------------------------------------------------

    def _seq_of(self, run_id: str | None) -> int | None:
        """The place of ``run_id`` in the history (None: not recorded, or not asked)."""
        if run_id is None:
            return None
        with self._guard() as db:
            row = db.execute("SELECT id FROM run WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else None

    def _packages(self, ids: Collection[int]) -> dict[int, dict[str, str]]:
        if not ids:
            return {}
        with self._guard() as db:
            marks = ",".join("?" * len(ids))
            return {int(i): json.loads(text) for i, text in db.execute(
                f"SELECT id, json FROM packages WHERE id IN ({marks})",  # noqa: S608 marks only
                tuple(ids))}

    def _run_records(self, where: str, params: tuple[Any, ...], *, limit: int | None,
                     cells: str | None = None) -> list[RunRecord]:
        """Runs matching ``where`` (newest first in SQL, oldest first returned); with
        ``cells``, only runs with a cell whose id matches that glob, and only those cells."""
        out: list[RunRecord] = []
        with self._guard() as db:
            query = f"SELECT {_RUN_COLUMNS} FROM run WHERE {where} ORDER BY id DESC"  # noqa: S608
            runs = db.execute(query, params)  # ``where`` is one of this module's clauses
            for row in runs:
                if limit is not None and len(out) >= limit:
                    break
                found = [(c, p) for c, p in self._cells_of(int(row[0]))
                         if cells is None or fnmatch.fnmatchcase(c.id, cells)]
                if cells is not None and not found:
                    continue
                packages = self._packages({p for _, p in found if p is not None})
                out.append(RunRecord(
                    seq=row[0], run_id=row[1], started_at=row[2], finished_at=row[3],
                    duration_s=row[4], config=row[5], profile=row[6], matrix_hash=row[7],
                    git_commit=row[8], git_branch=row[9], cancelled=row[10], baseline=row[11],
                    recorded_at=row[12], cells=tuple(c for c, _ in found),
                    packages={c.id: packages[p] for c, p in found if p is not None}))
        return out[::-1]

    def _cells_of(self, seq: int) -> list[tuple[CellResult, int | None]]:
        return [(CellResult.from_json(json.loads(data)), packages) for data, packages in
                self._db.execute("SELECT data, packages FROM cell WHERE run = ? ORDER BY id",
                                 (seq,)).fetchall()]

    def runs(self, *, last: int | None = 20, cells: str | None = None) -> list[RunRecord]:
        """The last ``last`` runs (all when None), oldest first; ``cells``: a glob on cell
        ids, keeping only runs with such cells, and only those cells."""
        return self._run_records("1", (), limit=last, cells=cells)

    def cell_history(self, cells: str, *, last: int | None = 20) -> list[RunRecord]:
        """The cells matching the glob ``cells`` over the last ``last`` runs that had them."""
        return self.runs(last=last, cells=cells)

    def baseline(self, *, branch: str | None, matrix_hash: str, profile: str | None,
                 before: str | None = None) -> RunRecord | None:
        """The run to compare with for ``--baseline auto``: the latest complete (not
        cancelled) run of the same profile on the same branch, or, without a branch (no
        git, a detached HEAD), with the same matrix file hash; ``before``: a run id, to
        look only at runs recorded before it."""
        seq = self._seq_of(before)
        where = "cancelled IS NULL AND profile IS ? AND id < ? AND " + (
            "git_branch = ?" if branch else "matrix_hash = ?")
        found = self._run_records(where, (profile, seq if seq is not None else 2**62,
                                          branch or matrix_hash), limit=1)
        return found[0] if found else None

    def _min_seq(self, last: int | None, before: int | None) -> tuple[int, int]:
        """(lowest, highest) run seq of the last ``last`` runs before ``before``."""
        high = before - 1 if before is not None else 2**62
        if last is None:
            return 0, high
        row = self._db.execute("SELECT id FROM run WHERE id <= ? ORDER BY id DESC "
                               "LIMIT 1 OFFSET ?", (high, last - 1)).fetchone()
        return (int(row[0]) if row else 0), high

    def _cell_inputs(self, low_seq: int, high_seq: int
                     ) -> dict[int, tuple[str, int, str, str, CellInputs]]:
        """cell row id -> (cell id, run seq, run id, started at, inputs) for a range of runs."""
        rows = self._db.execute(
            "SELECT cell.id, cell.cell_id, run.id, run.run_id, run.started_at, cell.project_digest,"
            " cell.image_digest, cell.interpreter, cell.packages FROM cell JOIN run"
            " ON run.id = cell.run WHERE run.id BETWEEN ? AND ?", (low_seq, high_seq)).fetchall()
        packages = {i: tuple(sorted(p.items()))
                    for i, p in self._packages({r[8] for r in rows if r[8] is not None}).items()}
        inputs: dict[tuple[Any, ...], CellInputs] = {}
        out = {}
        for row_id, cell_id, seq, run_id, started, project, image, interpreter, pkg in rows:
            key = (project, image, interpreter, pkg)
            if key not in inputs:  # interned: 4,800 cells share a handful of these
                inputs[key] = CellInputs(project=project, image=image, interpreter=interpreter,
                                         packages=packages.get(pkg) if pkg is not None else None)
            out[row_id] = (cell_id, seq, run_id, started, inputs[key])
        return out

    def _points(self, test_ids: Mapping[int, str], low_seq: int, high_seq: int,
                cells: str | None = None) -> Iterator[tuple[str, int, int, int, tuple[Any, ...]]]:
        """(test, outcome code, rerun, ms, cell info) for the given tests in a range of runs."""
        info = self._cell_inputs(low_seq, high_seq)
        if not info:
            return
        low, high = min(info), max(info)
        for test_id, name in test_ids.items():
            for cell, outcome, rerun, ms in self._db.execute(
                    "SELECT cell, outcome, rerun, duration_ms FROM result WHERE test = ? AND "
                    "cell BETWEEN ? AND ? ORDER BY cell", (test_id, low, high)):
                where = info.get(cell)
                if where is not None and (cells is None or fnmatch.fnmatchcase(where[0], cells)):
                    yield name, outcome, rerun, ms, where

    def test_names(self) -> list[str]:
        """Every test name the history holds (to match quarantine globs against)."""
        with self._guard() as db:
            return [str(r[0]) for r in db.execute("SELECT name FROM test ORDER BY name")]

    def test_history(self, substring: str, *, last: int | None = None,
                     cells: str | None = None, max_tests: int = 20) -> TestHistory:
        """Tests whose name contains ``substring`` (case-insensitive for ASCII), each over
        the last ``last`` runs (all when None), in cells matching the glob ``cells``."""
        pattern = "%" + substring.replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        with self._guard() as db:
            matched = db.execute("SELECT id, name FROM test WHERE name LIKE ? ESCAPE '\\' "
                                 "ORDER BY name", (pattern,)).fetchall()
            shown = dict(matched[:max_tests])
            points = tuple(
                HistoryPoint(test=name, seq=where[1], run_id=where[2], started_at=where[3],
                          cell=where[0], outcome=_OUTCOMES.get(outcome, "error"),
                          duration_s=ms / 1000, rerun=bool(rerun))
                for name, outcome, rerun, ms, where in self._points(
                    shown, *self._min_seq(last, None), cells))
        return TestHistory(tests=tuple(shown.values()), points=points,
                           omitted=max(len(matched) - max_tests, 0))

    def observations(self, tests: Collection[str] | None = None, *, last: int | None = None,
                     before: str | None = None) -> list[Observation]:
        """Observations for flakiness and quarantine. ``tests``: these names; None: every
        test that failed, errored or needed a rerun at least once in the window (the only
        ones that can have flipped). ``last`` runs before the run ``before``."""
        with self._guard() as db:
            low_seq, high_seq = self._min_seq(last, self._seq_of(before))
            if tests is None:
                bounds = db.execute("SELECT min(id), max(id) FROM cell WHERE run BETWEEN ? AND ?",
                                    (low_seq, high_seq)).fetchone()
                ids = [r[0] for r in db.execute(
                    "SELECT DISTINCT test FROM result WHERE (outcome IN (1, 2) OR rerun = 1)"
                    " AND cell BETWEEN ? AND ?", (bounds[0] or 0, bounds[1] or 0))]
                chosen = {int(i): str(n) for i, n in db.execute(
                    f"SELECT id, name FROM test WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608
                    ids)} if ids else {}
            else:
                wanted = set(tests)
                chosen = {int(i): str(n) for i, n in db.execute("SELECT id, name FROM test")
                          if n in wanted}
            return [Observation(test=name, cell=where[0], seq=where[1], run_id=where[2],
                                outcome=_OUTCOMES.get(outcome, "error"), rerun=bool(rerun),
                                inputs=where[4])
                    for name, outcome, rerun, _, where in self._points(chosen, low_seq,
                                                                       high_seq)]

    def durations(self, cells: Collection[str], *, runs: int = 5,
                  before: str | None = None) -> dict[tuple[str, str], list[float]]:
        """(test, cell id) -> seconds of its passing results in that cell's last ``runs``
        records before the run ``before``, oldest first (the history side of slowdowns)."""
        seq = self._seq_of(before)
        high = seq - 1 if seq is not None else 2**62
        with self._guard() as db:
            chosen: dict[int, str] = {}
            for cell_id in cells:
                chosen.update((int(r[0]), cell_id) for r in db.execute(
                    "SELECT id FROM cell WHERE cell_id = ? AND run <= ? ORDER BY id DESC "
                    "LIMIT ?", (cell_id, high, runs)))
            if not chosen:
                return {}
            names = dict(db.execute("SELECT id, name FROM test").fetchall())
            out: dict[tuple[str, str], list[float]] = {}
            # One range per test over the chosen cells' ids (cell ids grow with time).
            for test_id, cell, ms in db.execute(
                    "SELECT test, cell, duration_ms FROM result WHERE test IN "
                    "(SELECT id FROM test) AND cell BETWEEN ? AND ? AND outcome = 0 "
                    "ORDER BY test, cell", (min(chosen), max(chosen))):
                which = chosen.get(cell)
                if which is not None:
                    out.setdefault((names[test_id], which), []).append(ms / 1000)
        return out
