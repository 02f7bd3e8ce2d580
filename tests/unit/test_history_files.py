"""History files that cannot be used are refused, named and left untouched; two
processes share one; a read-only history still reads."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.history.errors import HistoryError, HistoryUnwritable
from orchestrator.history.records import RunMeta
from orchestrator.history.schema import APPLICATION_ID
from orchestrator.history.store import History

from .history_helpers import case, cell, run, simple_run

META = RunMeta(matrix_hash="m1", git_branch="main")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(path: Path, match: str, *, readonly: bool = False) -> HistoryError:
    before = _digest(path)
    with pytest.raises(HistoryError, match=match) as caught:
        History.open(path, readonly=readonly).close()
    assert _digest(path) == before, "a refused history must not be changed"
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 2
    assert "Traceback" not in str(caught.value)
    assert len(str(caught.value).splitlines()) <= 2  # the message, and a hint
    return caught.value


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(os.urandom(8192))
    error = _refused(path, "not an SQLite database")
    assert error.hint is not None
    assert "move the file away" in error.hint


def test_a_damaged_history_is_refused_not_repaired(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with History.open(path) as history:
        for night in range(1, 4):
            history.record(run(f"n-{night:02d}", *(cell(f"3.1{i}-slim", tuple(
                case(f"tests.test_{j}::test_case_with_a_long_name_{j}") for j in range(300)))
                for i in range(4))), META)
    with sqlite3.connect(path) as raw:  # fold the WAL in, then damage the tables' pages
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), 3 * page):
        data[offset:offset + 64] = os.urandom(64)
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(HistoryError, match=r"damaged|not a") as caught:
        _read_everything(path)
    assert str(path) in str(caught.value)
    assert _digest(path) == before


def _read_everything(path: Path) -> None:
    with History.open(path, readonly=True) as history:
        history.runs(last=None)
        history.test_history("test_case")


def test_an_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        raw.execute("INSERT INTO invoices VALUES (1, 9.5)")
    raw.close()
    _refused(path, "another program")


def test_an_empty_sqlite_file_becomes_a_history(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    sqlite3.connect(path).close()  # zero bytes
    with History.open(path) as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META)
        assert [r.run_id for r in history.runs()] == ["n-01"]


def test_a_history_from_a_newer_tagmatrix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    History.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()
    error = _refused(path, "newer tagmatrix")
    assert "schema 99" in str(error)
    _refused(path, "newer tagmatrix", readonly=True)


def test_a_history_with_objects_we_did_not_create_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    History.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TRIGGER spy AFTER INSERT ON run BEGIN DELETE FROM cell; END")
    raw.close()
    _refused(path, "trigger spy")


def test_a_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    link = tmp_path / "history.db"
    link.symlink_to(target)
    with pytest.raises(HistoryError, match="symbolic link"):
        History.open(link)
    assert target.read_bytes() == b"precious"
    real = tmp_path / "real.db"
    (tmp_path / "real.db-wal").symlink_to(target)
    with pytest.raises(HistoryError, match=r"real\.db-wal is a symbolic link"):
        History.open(real)
    assert target.read_bytes() == b"precious"


def _readonly_mount(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``folder`` read-only: a read-only bind mount in a private mount
    namespace when root (root ignores file modes), file modes otherwise."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        for item in folder.iterdir():
            item.chmod(0o444)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=False, timeout=60)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("root without unshare(1): no way to make a read-only filesystem here")
    shell = f'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && ' \
            f'exec "{sys.executable}" -c "$2"'
    return subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", shell,
                           "sh", str(folder), script],
                          capture_output=True, text=True, check=False, timeout=60)


def test_a_read_only_history_reads_and_says_it_cannot_write(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    path = folder / "history.db"
    with History.open(path) as history:
        history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META)
    before = _digest(path)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from orchestrator.history.errors import HistoryUnwritable
        from orchestrator.history.store import History
        path = Path({str(path)!r})
        try:
            History.open(path)
        except HistoryUnwritable as exc:
            print("unwritable:", exc.exit_code, str(exc).splitlines()[0])
        with History.open(path, readonly=True) as history:
            print("runs:", [r.run_id for r in history.runs()])
        try:
            History.open(path.with_name("new.db"))
        except HistoryUnwritable as exc:
            print("new:", type(exc).__name__)
    """)
    done = _readonly_mount(folder, script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"unwritable: 2 {path}: cannot write the history")
    assert lines[1] == "runs: ['n-01']"
    assert lines[2] == "new: HistoryUnwritable"
    assert _digest(path) == before
    assert issubclass(HistoryUnwritable, HistoryError)


def _record_nights(path: str, prefix: str, nights: int,
                   barrier: multiprocessing.synchronize.Barrier) -> None:
    history = History.open(Path(path))
    barrier.wait(timeout=60)
    for night in range(nights):
        history.record(run(f"{prefix}-{night:02d}", *(cell(f"3.1{i}-slim", tuple(
            case(f"tests.test_{j % 20}::test_{j}", "failed" if j == night else "passed")
            for j in range(500))) for i in range(4))), META)
    history.close()


def test_two_processes_record_into_one_history(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_record_nights, args=(str(path), name, 5, barrier))
               for name in ("alpha", "beta")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    with History.open(path, readonly=True) as history:
        ids = sorted(r.run_id for r in history.runs(last=None))
        assert ids == sorted(f"{p}-{n:02d}" for p in ("alpha", "beta") for n in range(5))
        assert all(len(r.cells) == 4 for r in history.runs(last=None))
        points = history.test_history("tests.test_3::test_3").points
        assert len([p for p in points if p.test == "tests.test_3::test_3"]) == 40


def _record_one(path: str, started: multiprocessing.synchronize.Event,
                done: multiprocessing.synchronize.Event) -> None:
    history = History.open(Path(path))
    started.set()
    history.record(simple_run("waited-01", {"3.12-slim": {"t::a": "passed"}}), META)
    done.set()
    history.close()


def test_a_writer_waits_for_the_other_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    History.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another tagmatrix in the middle of its write
    context = multiprocessing.get_context("spawn")
    started, done = context.Event(), context.Event()
    writer = context.Process(target=_record_one, args=(str(path), started, done))
    writer.start()
    try:
        assert started.wait(timeout=60)
        assert not done.wait(timeout=1.0), "the write went through while the lock was held"
        holder.execute("COMMIT")
        assert done.wait(timeout=30)
    finally:
        holder.close()
        writer.join(timeout=60)
    assert writer.exitcode == 0
    with History.open(path, readonly=True) as history:
        assert [r.run_id for r in history.runs()] == ["waited-01"]


def test_a_writer_gives_up_after_the_timeout_with_a_warning_error(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    History.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with History.open(path, timeout=0.2) as history, \
                pytest.raises(HistoryUnwritable, match="locked"):
            history.record(simple_run("n-01", {"3.12-slim": {"t::a": "passed"}}), META)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("SELECT count(*) FROM run").fetchone()[0] == 0
    finally:
        raw.close()
