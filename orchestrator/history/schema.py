"""The history file: its schema, and opening it without ever damaging what is there.

Layout, chosen for 200 runs x 24 cells x 2,000 tests (9.6 M per-test rows; see
benchmarks/history_bench.py for the figures):

- ``run``: one row per run; ``cell``: one row per cell of a run, with the cell's
  results.json entry as JSON (``data``) plus the columns queries filter on (its
  inputs, and ``bad``/``total`` tests, which tell an incident: see flaky.is_incident);
- ``packages``: installed packages (name -> version) interned by digest, since
  they rarely change from one night to the next;
- ``test``: test names interned (a name is ~80 bytes; its id is 2);
- ``result``: one row per (test, cell), ``WITHOUT ROWID`` with the primary key
  (test, cell). Clustering by test makes "a test over time" one range read, and
  since cell ids grow with time a new run appends at the end of each test's
  range and pruning the oldest run cuts at their start (one seek per test). A
  partial index by cell holds only the rare failed, errored or rerun rows, so
  "which tests failed in these runs" reads only those.

Outcomes are small integers (0 passed, 1 failed, 2 error, 3 skipped; 0 and 1
take no bytes in an SQLite record) and durations integer milliseconds.

Safety: the file is identified by its ``application_id`` and versioned by
``user_version``; a file that is not SQLite, belongs to another program, carries
unexpected triggers or views, or comes from a newer schema is refused with a
``HistoryError`` before anything is written. The path and its -wal/-shm/-journal
siblings must not be symbolic links (the folder sits in a checkout, which may be
hostile, and tagmatrix runs as root in CI). ``trusted_schema`` is off, so the
schema can never call functions with side effects.
"""

from __future__ import annotations

import errno
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from .errors import HistoryError, HistoryUnwritable

APPLICATION_ID = 0x54474D48  # "TGMH": tagmatrix history
SCHEMA_VERSION = 1
_MAGIC = b"SQLite format 3\x00"
_SIDECARS = ("-wal", "-shm", "-journal")
DEFAULT_TIMEOUT = 30.0  # seconds a writer waits for another one (busy timeout)

# Each entry upgrades the schema from the version before it; [0] creates it.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE run (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            duration_s REAL NOT NULL,
            config TEXT NOT NULL,
            profile TEXT,
            matrix_hash TEXT NOT NULL,
            git_commit TEXT,
            git_branch TEXT,
            cancelled TEXT,
            baseline TEXT,
            recorded_at TEXT NOT NULL)""",
        "CREATE INDEX run_by_branch ON run (git_branch, id)",
        "CREATE INDEX run_by_matrix ON run (matrix_hash, id)",
        "CREATE TABLE packages (id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, "
        "json TEXT NOT NULL)",
        """CREATE TABLE cell (
            id INTEGER PRIMARY KEY,
            run INTEGER NOT NULL,
            cell_id TEXT NOT NULL,
            status TEXT NOT NULL,
            image_digest TEXT NOT NULL,
            interpreter TEXT NOT NULL,
            project_digest TEXT NOT NULL,
            packages INTEGER,
            bad INTEGER NOT NULL,
            total INTEGER NOT NULL,
            data TEXT NOT NULL)""",
        "CREATE INDEX cell_by_run ON cell (run)",
        "CREATE INDEX cell_by_id ON cell (cell_id, id)",
        "CREATE TABLE test (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        """CREATE TABLE result (
            test INTEGER NOT NULL,
            cell INTEGER NOT NULL,
            outcome INTEGER NOT NULL,
            rerun INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            PRIMARY KEY (test, cell)) WITHOUT ROWID""",
        "CREATE INDEX result_bad ON result (cell) WHERE outcome IN (1, 2) OR rerun = 1",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

# What sqlite_master must hold at the current version (autoindexes of UNIQUE/PK aside).
EXPECTED_OBJECTS = frozenset({
    ("table", "meta"), ("table", "run"), ("index", "run_by_branch"), ("index", "run_by_matrix"),
    ("table", "packages"), ("table", "cell"), ("index", "cell_by_run"), ("index", "cell_by_id"),
    ("table", "test"), ("table", "result"), ("index", "result_bad"),
})

_MOVE_IT = "move the file away (or pass another history path); tagmatrix starts a new one"


def _refuse_links(path: Path) -> None:
    """The file, its folder and SQLite's side files must not be symbolic links."""
    for candidate in (path.parent, path, *(path.with_name(path.name + s) for s in _SIDECARS)):
        try:
            mode = candidate.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HistoryError(path, f"cannot inspect {candidate.name}: {exc.strerror}") from exc
        if stat.S_ISLNK(mode):
            raise HistoryError(path, f"{candidate} is a symbolic link; tagmatrix does not "
                               "follow links for its history", hint=_MOVE_IT)
        if candidate == path and not stat.S_ISREG(mode):
            raise HistoryError(path, "is not a regular file", hint=_MOVE_IT)


def _check_magic(path: Path) -> bool:
    """Whether the file exists with content; refuses anything but an SQLite file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_MAGIC))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise HistoryError(path, f"cannot read the history: {exc.strerror}") from exc
    if not head:
        return False
    if head != _MAGIC:
        raise HistoryError(path, "is not a tagmatrix history (not an SQLite database)",
                           hint=_MOVE_IT)
    return True


_UNWRITABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_CANTOPEN",
               "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_PERM")
_UNWRITABLE_TEXT = ("readonly", "read-only", "unable to open", "disk i/o", "disk is full",
                    "locked", "busy", "permission")  # Python 3.10 has no sqlite_errorname


def translate(path: Path, exc: sqlite3.Error) -> HistoryError:
    """An sqlite3 failure as one of ours: unwritable (the run can go on) or unusable."""
    text = str(exc)
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name.startswith(_UNWRITABLE) or (not name and any(s in text.lower()
                                                         for s in _UNWRITABLE_TEXT)):
        return HistoryUnwritable(path, f"cannot write the history: {text}",
                                 hint="check that the folder is writable and has space, or "
                                 "give another history path; the run's reports are complete")
    return HistoryError(path, f"the history is damaged ({text})", hint=_MOVE_IT)


def _connect(path: Path, *, readonly: bool, immutable: bool, timeout: float
             ) -> sqlite3.Connection:
    query = "mode=ro" if readonly else "mode=rwc"
    if immutable:  # read-only media where SQLite cannot create the -shm file of a WAL file
        query += "&immutable=1"
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?{query}"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA trusted_schema = OFF")
    setconfig = getattr(connection, "setconfig", None)  # Python >= 3.12
    if setconfig is not None:  # no writable_schema, no other ways to corrupt on purpose
        setconfig(getattr(sqlite3, "SQLITE_DBCONFIG_DEFENSIVE"), True)  # noqa: B009
    connection.execute("PRAGMA foreign_keys = OFF")
    return connection


def _objects(connection: sqlite3.Connection) -> set[tuple[str, str]]:
    return {(str(t), str(n)) for t, n in connection.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex_%'")}


def _identify(path: Path, connection: sqlite3.Connection) -> int:
    """The file's schema version (0: an empty database); refuses foreign or newer files."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if application_id != APPLICATION_ID:
        if application_id == 0 and version == 0 and not _objects(connection):
            return 0  # an empty SQLite file holds nothing to damage
        raise HistoryError(path, "is an SQLite database of another program, not a tagmatrix "
                           "history", hint=_MOVE_IT)
    if version > SCHEMA_VERSION:
        raise HistoryError(path, f"was written by a newer tagmatrix (history schema {version}; "
                           f"this one reads up to {SCHEMA_VERSION})",
                           hint="upgrade tagmatrix, or give this run another history path")
    if version == SCHEMA_VERSION:
        unexpected = _objects(connection) - EXPECTED_OBJECTS
        if unexpected:
            names = ", ".join(f"{kind} {name}" for kind, name in sorted(unexpected))
            raise HistoryError(path, f"holds objects tagmatrix did not create ({names})",
                               hint=_MOVE_IT)
    return int(version)


def _migrate(path: Path, connection: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction (another writer may have
    done it first: the version is read again under the write lock)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _identify(path, connection)
        for steps in _MIGRATIONS[version:]:
            for statement in steps:
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                               (str(SCHEMA_VERSION),))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _make_folder(path: Path) -> None:
    folder = path.parent
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True)
    except FileExistsError:  # another process made it in between
        return
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
            raise HistoryUnwritable(path, f"cannot create {folder}: {exc.strerror}",
                                    hint="give a writable history path; the run's reports "
                                    "are complete") from exc
        raise HistoryError(path, f"cannot create {folder}: {exc.strerror}") from exc
    if folder.name == ".tagmatrix":
        # As pytest does for .pytest_cache: the history stays out of git by default.
        (folder / ".gitignore").write_text("# created by tagmatrix\n*\n", encoding="utf-8")


def _require_current(path: Path, version: int) -> None:
    if version < SCHEMA_VERSION:
        raise HistoryError(path, f"has history schema {version}; this tagmatrix needs "
                           f"{SCHEMA_VERSION}", hint="open it once for writing to migrate it")


def open_connection(path: Path, *, readonly: bool = False,
                    timeout: float = DEFAULT_TIMEOUT) -> sqlite3.Connection:
    """An open, checked, current connection to the history at ``path``.

    ``readonly``: the file must exist; nothing is created, migrated or written.
    Otherwise the folder and file are created as needed, an older schema is
    migrated, and the file is switched to WAL (readers never wait for the writer).
    Raises :class:`HistoryError` for an unusable file and :class:`HistoryUnwritable`
    when a writable history cannot be had (the caller warns and goes on).
    """
    _refuse_links(path)
    exists = _check_magic(path)
    if readonly and not exists:
        raise HistoryError(path, "no history here yet",
                           hint="record a run first (or check the path)")
    if not readonly:
        _make_folder(path)
    connection: sqlite3.Connection | None = None
    try:
        try:
            connection = _connect(path, readonly=readonly, immutable=False, timeout=timeout)
            version = _identify(path, connection)
        except sqlite3.OperationalError:
            if not readonly:
                raise
            if connection is not None:
                connection.close()
            connection = _connect(path, readonly=True, immutable=True, timeout=timeout)
            version = _identify(path, connection)
        if readonly:
            _require_current(path, version)
            return connection
        if version < SCHEMA_VERSION:
            _migrate(path, connection)
        connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts; a power cut may lose the last run only.
        connection.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        if connection is not None:
            connection.close()
        raise translate(path, exc) from exc
    except BaseException:
        if connection is not None:
            connection.close()
        raise
    return connection
