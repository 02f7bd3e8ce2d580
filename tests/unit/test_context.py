"""Build contexts as snapshots: tagmatrix's exclusions, .dockerignore (with "!"), a
content fingerprint that ignores mtimes, and streams that append members."""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engine.context import ContextSnapshot
from orchestrator.errors import BuildFailed
from orchestrator.plan import ALWAYS_EXCLUDED, context_excludes


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "env" / "bin").mkdir(parents=True)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__pycache__" / "mod.cpython-312.pyc").write_bytes(b"\0")
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg.egg-info").mkdir()
    (root / ".tagmatrix").mkdir()
    (root / ".tagmatrix" / "history.db").write_bytes(b"db")
    (root / "reports" / "logs").mkdir(parents=True)
    (root / "reports" / "logs" / "3.12-slim.log").write_text("old run\n")
    (root / "app.py").write_text("print('hi')\n")
    return root


OPEN: list[ContextSnapshot] = []


@pytest.fixture(autouse=True)
def _close_snapshots() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def snapshot(root: Path, *, reports: Path | None = None, prefix: str = "") -> ContextSnapshot:
    found = ContextSnapshot(root, context_excludes(root, reports or root / "reports"),
                            prefix=prefix)
    OPEN.append(found)
    return found


def names(found: ContextSnapshot) -> set[str]:
    return set(found.members())


def test_tagmatrix_output_vcs_virtualenvs_and_caches_stay_out(tmp_path: Path) -> None:
    root = project(tmp_path)
    found = names(snapshot(root))
    assert {"app.py", "pkg", "pkg/mod.py"} <= found
    for left_out in (".git", ".git/HEAD", "env", "env/pyvenv.cfg", "pkg/__pycache__",
                     "pkg.egg-info", ".tagmatrix", ".tagmatrix/history.db", "reports",
                     "reports/logs/3.12-slim.log"):
        assert left_out not in found, left_out
    assert ".git" in ALWAYS_EXCLUDED


def test_a_runs_own_reports_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = snapshot(root).fingerprint
    (root / "reports" / "results.json").write_text("{}")
    (root / "reports" / "logs" / "3.13-slim.log").write_text("another run\n")
    assert snapshot(root).fingerprint == first
    (root / "app.py").write_text("print('changed')\n")
    assert snapshot(root).fingerprint != first


def test_dockerignore_applies_after_the_exclusions_and_can_bring_one_back(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".dockerignore").write_text("# comment\napp.py\n!.git\n!.git/HEAD\n")
    found = names(snapshot(root))
    assert "app.py" not in found
    assert ".git/HEAD" in found  # opted back in with "!"


def test_a_symlinked_dockerignore_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret\n")
    (root / ".dockerignore").symlink_to(secret)
    with pytest.raises(BuildFailed, match="symbolic link"):
        snapshot(root)


def test_fingerprint_follows_content_not_mtimes(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = snapshot(root).fingerprint
    os.utime(root / "app.py", (0, 0))
    assert snapshot(root).fingerprint == first
    (root / "app.py").chmod(0o755)
    assert snapshot(root).fingerprint != first


def test_links_are_kept_as_links_and_sockets_left_out(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "link").symlink_to("/etc/passwd")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "docker.sock"))
        found = snapshot(root)
    assert "docker.sock" not in names(found)
    stream = found.stream()
    with tarfile.open(fileobj=io.BytesIO(stream.read())) as archive:
        member = archive.getmember("link")
    assert member.issym()
    assert member.linkname == "/etc/passwd"  # the link itself, never what it points at


def test_a_stream_is_the_snapshot_plus_extra_members_and_knows_its_length(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    found = snapshot(root, prefix="project/")
    first = found.stream({"Dockerfile": b"FROM x\n", "tools/a.py": b"print(1)\n"})
    second = found.stream({"Dockerfile": b"FROM y\n"})  # two builds at once
    body_one, body_two = first.read(), second.read()
    assert len(first) == len(body_one)
    with tarfile.open(fileobj=io.BytesIO(body_one)) as archive:
        members = archive.getnames()
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None
        assert dockerfile.read() == b"FROM x\n"
    assert "project/app.py" in members
    assert "tools/a.py" in members
    with tarfile.open(fileobj=io.BytesIO(body_two)) as archive:
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None
        assert dockerfile.read() == b"FROM y\n"
    # the prefix does not change what the project is
    assert found.fingerprint == snapshot(root).fingerprint


def test_heavy_folders_that_are_not_excluded_are_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = project(tmp_path)
    (root / "node_modules" / "x").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        snapshot(root)
    assert "includes node_modules: add them to .dockerignore" in caplog.text
