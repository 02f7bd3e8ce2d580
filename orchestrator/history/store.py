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
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..results import CellResult, RunResult
from . import observe
from .errors import HistoryError
from .flaky import Observation, outcome_text, test_name
from .records import HistoryPoint, Recorded, RunMeta, RunRecord, Scope, TestHistory
from .schema import DEFAULT_TIMEOUT, open_connection, translate
from .settings import DEFAULT_KEEP

_CODES = {text: code for code, text in observe.OUTCOMES.items()}
_RANK = {"skipped": 0, "passed": 1, "failed": 2, "error": 3}  # which duplicate wins
_MAX_PACKAGES = 5000
_RUN_COLUMNS = ("id, run_id, started_at, finished_at, duration_s, config, profile, matrix_hash,"
                " git_commit, git_branch, cancelled, baseline, recorded_at")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _packages_json(packages: Mapping[str, str]) -> str:
    items = sorted((str(k)[:200], str(v)[:200]) for k, v in packages.items())
    return json.dumps(dict(items[:_MAX_PACKAGES]), separators=(",", ":"), sort_keys=True)


def _packages_of(cell: CellResult, meta: RunMeta) -> Mapping[str, str] | None:
    """The cell's installed packages: the caller's, else the cell's own record
    (CellResult.packages), else unknown."""
    return meta.packages.get(cell.id) or cell.packages or None


def _cell_json(cell: CellResult) -> str:
    """The cell's results.json entry. Its cases are dropped first: to_json() would convert
    every case with asdict() only to delete them (0.1 s per 2,000-test cell); its packages
    live in the packages table (a night's cells share one set)."""
    data = replace(cell, cases=(), output_tail="").to_json()
    data.pop("packages", None)
    return json.dumps(data, separators=(",", ":"))


def _with_packages(cell: CellResult, packages: Mapping[str, str] | None) -> CellResult:
    return cell if packages is None else replace(cell, packages=dict(packages))


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
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._guard() as db:
            if db.in_transaction:  # nested: the outer one decides
                yield db
                return
            db.execute(begin)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One writer at a time: waits up to the busy timeout for another one."""
        if self.readonly:
            raise HistoryError(self.path, "opened read-only")
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """One consistent snapshot for several queries (a writer may commit meanwhile)."""
        return self._transaction("BEGIN")

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
                packages = _packages_of(cell, meta)
                results = _results(cell)
                cell_row = db.execute(
                    "INSERT INTO cell (run, cell_id, status, image_digest, interpreter,"
                    " project_digest, packages, bad, total, data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, cell.id, str(cell.status.value), cell.image_digest,
                     cell.interpreter.version, cell.project_digest,
                     self._intern_packages(db, packages) if packages is not None else None,
                     sum(1 for o, _, _ in results.values() if o in (1, 2)), len(results),
                     _cell_json(cell))).lastrowid or 0
                for name, (outcome, rerun, ms) in results.items():
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

    def _run_records(self, where: str, params: tuple[Any, ...], *, limit: int | None,
                     cells: str | None = None) -> list[RunRecord]:
        """Runs matching ``where`` (newest first in SQL, oldest first returned); with
        ``cells``, only runs with a cell whose id matches that glob, and only those cells."""
        out: list[RunRecord] = []
        with self._read() as db:
            query = f"SELECT {_RUN_COLUMNS} FROM run WHERE {where} ORDER BY id DESC"  # noqa: S608
            runs = db.execute(query, params)  # ``where`` is one of this module's clauses
            for row in runs:
                if limit is not None and len(out) >= limit:
                    break
                found = [(c, p) for c, p in self._cells_of(int(row[0]))
                         if cells is None or fnmatch.fnmatchcase(c.id, cells)]
                if cells is not None and not found:
                    continue
                sets = observe.packages(db, {p for _, p in found if p is not None})
                out.append(RunRecord(
                    seq=row[0], run_id=row[1], started_at=row[2], finished_at=row[3],
                    duration_s=row[4], config=row[5], profile=row[6], matrix_hash=row[7],
                    git_commit=row[8], git_branch=row[9], cancelled=row[10], baseline=row[11],
                    recorded_at=row[12],
                    cells=tuple(_with_packages(c, sets.get(p) if p is not None else None)
                                for c, p in found),
                    packages={c.id: sets[p] for c, p in found if p is not None}))
        return out[::-1]

    def _cells_of(self, seq: int) -> list[tuple[CellResult, int | None]]:
        return [(CellResult.from_json(json.loads(data)), packages) for data, packages in
                self._db.execute("SELECT data, packages FROM cell WHERE run = ? ORDER BY id",
                                 (seq,)).fetchall()]

    def runs(self, *, last: int | None = 20, cells: str | None = None,
             scope: Scope | None = None, before: str | None = None) -> list[RunRecord]:
        """The last ``last`` runs (all when None) of ``scope`` (all: None) recorded before
        run ``before`` (None: all), oldest first; ``cells``: a glob on cell ids, keeping
        only runs with such cells, and only those cells."""
        where, params = observe.in_scope(scope)
        if before is None:
            return self._run_records(where, params, limit=last, cells=cells)
        with self._read() as db:
            high = observe.window(db, None, before)[1]
            return self._run_records(f"id <= ? AND {where}", (high, *params), limit=last,
                                     cells=cells)

    def scoped(self, scope: Scope, *, before: str | None = None) -> tuple[list[str], int]:
        """Run ids of ``scope`` recorded before run ``before``, newest first, and how many
        runs of other scopes the history holds before it (what the analyses leave out)."""
        where, params = scope.sql()
        with self._read() as db:
            high = observe.window(db, None, before)[1]
            ids = [str(r[0]) for r in db.execute(
                f"SELECT run_id FROM run WHERE id <= ? AND {where} ORDER BY id DESC",  # noqa: S608
                (high, *params))]
            total = int(db.execute("SELECT count(*) FROM run WHERE id <= ?",
                                   (high,)).fetchone()[0])
        return ids, total - len(ids)

    def count(self) -> int:
        """How many runs the history holds."""
        with self._guard() as db:
            return int(db.execute("SELECT count(*) FROM run").fetchone()[0])

    def cell_history(self, cells: str, *, last: int | None = 20) -> list[RunRecord]:
        """The cells matching the glob ``cells`` over the last ``last`` runs that had them."""
        return self.runs(last=last, cells=cells)

    def baseline(self, *, branch: str | None, matrix_hash: str, profile: str | None,
                 before: str | None = None) -> RunRecord | None:
        """The run to compare with for ``--baseline auto``: the latest complete (not
        cancelled) run of the same :class:`Scope` (profile, and branch or else matrix
        file); ``before``: a run id, to look only at runs recorded before it."""
        where, params = Scope(profile=profile, branch=branch, matrix_hash=matrix_hash).sql()
        with self._read() as db:
            high = observe.window(db, None, before)[1]
            found = self._run_records(f"cancelled IS NULL AND id <= ? AND {where}",
                                      (high, *params), limit=1)
        return found[0] if found else None

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
        with self._read() as db:
            matched = db.execute("SELECT id, name FROM test WHERE name LIKE ? ESCAPE '\\' "
                                 "ORDER BY name", (pattern,)).fetchall()
            shown = dict(matched[:max_tests])
            cells_in = observe.cell_rows(db, *observe.window(db, last, None))
            found = tuple(
                HistoryPoint(test=name, seq=where.seq, run_id=where.run_id,
                             started_at=where.started_at, cell=where.cell,
                             outcome=observe.OUTCOMES.get(outcome, "error"),
                             duration_s=ms / 1000, rerun=bool(rerun))
                for name, outcome, rerun, ms, where in observe.points(db, shown, cells_in, cells))
        return TestHistory(tests=tuple(shown.values()), points=found,
                           omitted=max(len(matched) - max_tests, 0))

    # -- the analyses' queries (orchestrator.history.observe) ---------------------------

    def flaky_candidates(self, *, last: int | None = None, before: str | None = None,
                         limit: int = 200, scope: Scope | None = None
                         ) -> tuple[list[str], int]:
        """Tests that can have flipped, the most often failing first, and how many more."""
        with self._read() as db:
            return observe.flaky_candidates(db, last=last, before=before, limit=limit,
                                            scope=scope)

    def observations(self, tests: Collection[str], *, last: int | None = None,
                     before: str | None = None,
                     scope: Scope | None = None) -> list[Observation]:
        """Every result of ``tests`` in the last ``last`` runs of ``scope`` before run
        ``before``."""
        with self._read() as db:
            return observe.observations(db, tests, last=last, before=before, scope=scope)

    def previous_observations(self, cells: Collection[str], *, before: str | None = None,
                              tests: Collection[str] | None = None,
                              scope: Scope | None = None) -> list[Observation]:
        """Results of each cell's latest record in ``scope`` before run ``before``: all, or
        the failed, errored and rerun ones plus those of ``tests``."""
        with self._read() as db:
            return observe.previous_observations(db, cells, before=before, tests=tests,
                                                 scope=scope)

    def durations(self, cells: Collection[str], *, runs: int = 5, before: str | None = None,
                  scope: Scope | None = None) -> dict[tuple[str, str], list[float]]:
        """(test, cell) -> passing times in the cell's last ``runs`` records in ``scope``,
        oldest first."""
        with self._read() as db:
            return observe.durations(db, cells, runs=runs, before=before, scope=scope)
