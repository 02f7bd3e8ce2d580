"""The run history when things go wrong, on the real engine: a read-only history, a run
cancelled with SIGINT, a history from a newer tagmatrix or not a history at all.

Projects live in folders named ``nightly-*`` (images ``tagmatrix/nightly-*``, removed at
the end of the module).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import Spawn, lab_matrix, make_project, tagmatrix
from .workspace import Workspace

PASSING = {"test_ok.py": "def test_ok():\n    pass\n"}


@pytest.fixture(scope="module", autouse=True)
def _own_images(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    for image in docker_client.images.list(name="tagmatrix/nightly-*"):
        for tag in image.tags:
            docker_client.images.remove(tag, force=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runs(history: Path) -> list[dict[str, Any]]:
    shown = tagmatrix("history", "--history", str(history), "--json")
    assert shown.code == 0, shown.err
    runs: list[dict[str, Any]] = json.loads(shown.out)["runs"]
    return runs


def test_a_read_only_history_is_not_written_and_the_run_completes(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str]) -> None:
    path = make_project(workspace.folder("nightly-ro"), lab_matrix(lab_minors[:1]), PASSING)
    first = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r1"),
                      client=docker_client)
    assert first.code == 0, first.err
    history = path.parent / ".tagmatrix" / "history.db"
    before = _digest(history)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare(1) is missing (util-linux): no read-only mount to test with",
                    pytrace=False)
    # root ignores file modes: a read-only bind mount of the history's folder, in a mount
    # namespace of this one command
    shell = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
    done = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", shell, "sh",
         str(history.parent), sys.executable, "-m", "orchestrator", "run", "-f", str(path),
         "--reports", str(tmp_path / "r2")],
        capture_output=True, text=True, check=False, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "history not written" in done.stderr
    results = json.loads((tmp_path / "r2" / "results.json").read_text())
    assert results["cells"][0]["status"] == "passed"
    assert results["history"]["recorded"] is False
    assert "cannot write the history" in results["history"]["problem"]
    assert "history not written: " in (tmp_path / "r2" / "summary.md").read_text()
    assert _digest(history) == before
    assert [r["run_id"] for r in _runs(history)] == \
        [json.loads((tmp_path / "r1" / "results.json").read_text())["run_id"]]


SLEEPY = {"test_sleepy.py": """
    import os
    import time

    def test_maybe_sleeps():
        if os.environ["MATRIX_PYTHON"] == os.environ["SLEEPY_PYTHON"]:
            time.sleep(300)
"""}


def test_a_cancelled_run_records_what_finished_marked_cancelled(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient,
        lab_minors: list[str], spawn: Spawn) -> None:
    quick, sleepy = lab_minors[0], lab_minors[1]
    path = make_project(workspace.folder("nightly-cancel"), lab_matrix(
        [quick, sleepy], test_extra=f'env: {{SLEEPY_PYTHON: "{sleepy}"}}'), SLEEPY)
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    quick_log = tmp_path / "r" / "logs" / f"{quick}-slim.log"
    deadline = time.monotonic() + 240
    # the quick cell has finished and the sleepy one is running
    while not (quick_log.is_file() and "result: passed" in quick_log.read_text()
               and spawn.containers(running=True)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the quick cell never finished"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    [recorded] = _runs(path.parent / ".tagmatrix" / "history.db")
    assert recorded["cancelled"] == "SIGINT"
    assert [(c["id"], c["status"]) for c in recorded["cells"]] == [
        (f"{quick}-slim", "passed"), (f"{sleepy}-slim", "cancelled")]
    assert spawn.containers() == set()


@pytest.mark.parametrize(("damage", "message"), [
    ("newer", "was written by a newer tagmatrix (history schema 99"),
    ("garbage", "is not a tagmatrix history (not an SQLite database)"),
])
def test_an_unusable_history_is_refused_before_the_run_and_kept(
        tmp_path: Path, workspace: Workspace, docker_client: docker.DockerClient, *,
        lab_minors: list[str], damage: str, message: str) -> None:
    path = make_project(workspace.folder("nightly-refused"), lab_matrix(lab_minors[:1]), PASSING)
    history = tmp_path / "history.db"
    if damage == "newer":
        from orchestrator.history.store import History

        History.open(history).close()
        with sqlite3.connect(history) as db:
            db.execute("PRAGMA user_version = 99")
        db.close()
    else:
        history.write_bytes(b"these are my notes, not a database\n" * 100)
    before = _digest(history)
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        "--history", str(history), client=docker_client)
    assert outcome.code == 2
    first, *rest = outcome.err.splitlines()
    assert first == f"tagmatrix: error: {history}: {message}" + \
        ("; this one reads up to 1)" if damage == "newer" else "")
    assert all(line.startswith("  hint: ") for line in rest)
    assert "Traceback" not in outcome.err
    assert _digest(history) == before
    assert not (tmp_path / "r" / "results.json").exists()  # nothing ran
