"""Build contexts as snapshots: tagmatrix's exclusions, .dockerignore (with "!"), its own
output that nothing brings back, a content fingerprint that ignores mtimes, the size cap,
sparse files, and streams that append members and apply a prefix."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engine.context import ContextSnapshot, Hooks
from orchestrator.errors import BuildFailed
from orchestrator.ignorefile import MAX_PATTERNS
from orchestrator.jobs import ContextRules
from orchestrator.plan import ALWAYS_EXCLUDED, context_excludes, own_output
from orchestrator.reportdir import MARKER


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


def rules(root: Path, *, reports: Path | None = None, history: Path | None = None,
          max_bytes: int | None = None) -> ContextRules:
    found = ContextRules(excludes=context_excludes(root),
                         own=own_output(root, reports or root / "reports", history))
    return found if max_bytes is None else ContextRules(excludes=found.excludes, own=found.own,
                                                        max_bytes=max_bytes)


def snapshot(root: Path, found: ContextRules | None = None, **kwargs: object) -> ContextSnapshot:
    taken = ContextSnapshot(root, found or rules(root), **kwargs)  # type: ignore[arg-type]
    OPEN.append(taken)
    return taken


def names(found: ContextSnapshot) -> set[str]:
    return set(found.members())


def streamed(found: ContextSnapshot, extra: dict[str, bytes] | None = None,
             prefix: str = "") -> dict[str, tarfile.TarInfo]:
    stream = found.stream(extra, prefix=prefix)
    body = stream.read()
    assert len(body) == len(stream)
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return {m.name: m for m in archive.getmembers()}


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


def test_editing_the_matrix_file_or_its_lock_does_not_change_the_project(
        tmp_path: Path) -> None:
    """A quarantine entry or a new lock is a CI setting, not a change of the code: with
    the matrix file at the project's root (as the README shows) the digest stays."""
    from orchestrator.config import load_config
    from orchestrator.plan import make_plan
    from orchestrator.tags import Catalogue

    root = project(tmp_path)
    matrix = root / "matrix.yaml"
    matrix.write_text('matrix: {python: ["3.12"]}\n')
    (job,) = make_plan(load_config(matrix), Catalogue.builtin()).jobs
    assert job.build is not None
    found = job.build.context_rules
    first = snapshot(root, found).fingerprint
    matrix.write_text('matrix: {python: ["3.12"]}\n# quarantine: a comment\n')
    (root / "matrix.lock").write_text("{}")
    assert snapshot(root, found).fingerprint == first
    assert "matrix.yaml" not in names(snapshot(root, found))


def test_dockerignore_applies_after_the_exclusions_and_can_bring_one_back(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".dockerignore").write_text("# comment\napp.py\n!.git\n!.git/HEAD\n")
    found = names(snapshot(root))
    assert "app.py" not in found
    assert ".git/HEAD" in found  # opted back in with "!" (setuptools-scm needs it)


def test_no_dockerignore_line_brings_tagmatrix_output_back(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = snapshot(root).fingerprint
    (root / ".dockerignore").write_text("!.tagmatrix\n!.tagmatrix/history.db\n!reports\n"
                                        "!reports/**\n!**\n")
    found = names(snapshot(root))
    assert not {n for n in found if n.split("/")[0] in (".tagmatrix", "reports")}
    # the digest does not change with each run's output, "!" or not
    before = snapshot(root).fingerprint
    (root / "reports" / "results.json").write_text('{"run": 2}')
    (root / ".tagmatrix" / "history.db").write_bytes(b"db, one run later")
    assert snapshot(root).fingerprint == before != first  # (.dockerignore itself changed)


def test_a_history_kept_inside_the_project_stays_out(tmp_path: Path) -> None:
    root = project(tmp_path)
    # .tagmatrix folders at any depth (ci/matrix.yaml with project: ..), history.path
    (root / "ci" / ".tagmatrix").mkdir(parents=True)
    (root / "ci" / ".tagmatrix" / "history.db").write_bytes(b"db")
    (root / "ci" / "runs.db").write_bytes(b"db")  # history.path: runs.db
    (root / "ci" / "runs.db-wal").write_bytes(b"wal")
    (root / "ci" / "keep.txt").write_text("mine\n")
    (root / ".dockerignore").write_text("!ci\n!ci/**\n")
    default = names(snapshot(root, rules(root, history=root / "ci/.tagmatrix/history.db")))
    assert "ci/keep.txt" in default
    assert not {n for n in default if n.startswith("ci/.tagmatrix")}
    custom = names(snapshot(root, rules(root, history=root / "ci" / "runs.db")))
    assert "ci/keep.txt" in custom
    assert not {"ci/runs.db", "ci/runs.db-wal", "ci/.tagmatrix/history.db"} & custom


def test_any_reports_folder_stays_out_wherever_a_run_put_it(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "out" / "pr-42" / "logs").mkdir(parents=True)  # an earlier --reports out/pr-42
    (root / "out" / "pr-42" / MARKER).write_text("")
    (root / "out" / "pr-42" / "results.json").write_text("{}")
    (root / "out" / "notes.txt").write_text("mine\n")
    (root / ".dockerignore").write_text("!out\n!out/**\n")
    found = names(snapshot(root))
    assert "out/notes.txt" in found
    assert not {n for n in found if n.startswith("out/pr-42")}


def test_a_symlinked_dockerignore_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret\n")
    (root / ".dockerignore").symlink_to(secret)
    with pytest.raises(BuildFailed, match="symbolic link"):
        snapshot(root)


def test_more_dockerignore_patterns_than_the_cap_are_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    lines = [f"**/nothing{i}/**" for i in range(MAX_PATTERNS)]
    (root / ".dockerignore").write_text("\n".join(["# a comment is no pattern", *lines]))
    assert "app.py" in names(snapshot(root))  # at the cap: fine
    (root / ".dockerignore").write_text("\n".join([*lines, "one-more"]))
    with pytest.raises(BuildFailed) as caught:
        snapshot(root)
    message = str(caught.value)
    assert f"{root / '.dockerignore'} has {MAX_PATTERNS + 1} patterns" in message
    assert f"cap of {MAX_PATTERNS}" in message
    assert "\n" not in message


def test_a_pattern_re2_cannot_read_is_a_clear_build_error(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".dockerignore").write_text("[z-a]\n")  # docker-py: re.error, a traceback
    with pytest.raises(BuildFailed, match=r"\.dockerignore: .*\[z-a\].* is not a pattern"):
        snapshot(root)


def test_fingerprint_follows_content_not_mtimes(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = snapshot(root).fingerprint
    os.utime(root / "app.py", (0, 0))
    assert snapshot(root).fingerprint == first
    (root / "app.py").chmod(0o755)
    assert snapshot(root).fingerprint != first


def test_the_fingerprint_is_computed_as_before(tmp_path: Path) -> None:
    # Runs recorded by earlier versions keep comparing: same paths, same digest input.
    root = tmp_path / "p"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a.txt").write_bytes(b"alpha")
    (root / "d" / "a.txt").chmod(0o644)
    (root / "d").chmod(0o755)
    (root / "l").symlink_to("d/a.txt")
    expected = hashlib.sha256()
    expected.update(b"d\x00755\x00b'5'\x00\x000\x00")
    expected.update(b"d/a.txt\x00644\x00b'0'\x00\x005\x00alpha")
    expected.update(b"l\x00777\x00b'2'\x00d/a.txt\x000\x00")
    found = snapshot(root, ContextRules())
    assert found.fingerprint == f"sha256:{expected.hexdigest()}"
    assert snapshot(root, ContextRules(), content=False).fingerprint == found.fingerprint


def test_links_are_kept_as_links_and_sockets_left_out(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "link").symlink_to("/etc/passwd")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "docker.sock"))
        found = snapshot(root)
    assert "docker.sock" not in names(found)
    member = streamed(found)["link"]
    assert member.issym()
    assert member.linkname == "/etc/passwd"  # the link itself, never what it points at


def test_a_stream_is_the_snapshot_plus_extra_members_under_a_prefix(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "tests").mkdir()
    (root / "tests" / ("ünïcode_" + "x" * 120 + ".py")).write_text("long name\n")  # pax
    found = snapshot(root)
    first = found.stream({"Dockerfile": b"FROM x\n", "tools/a.py": b"print(1)\n"},
                         prefix="project/")
    second = found.stream({"Dockerfile": b"FROM y\n"})  # two builds at once
    body_one, body_two = first.read(), second.read()
    assert (len(first), len(second)) == (len(body_one), len(body_two))
    with tarfile.open(fileobj=io.BytesIO(body_one)) as archive:
        members = archive.getnames()
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None
        assert dockerfile.read() == b"FROM x\n"
        app = archive.extractfile("project/app.py")
        assert app is not None
        assert app.read() == b"print('hi')\n"
    assert "project/tests/ünïcode_" + "x" * 120 + ".py" in members
    assert "tools/a.py" in members
    assert "app.py" not in members
    with tarfile.open(fileobj=io.BytesIO(body_two)) as archive:
        assert "app.py" in archive.getnames()
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None
        assert dockerfile.read() == b"FROM y\n"


def test_a_context_over_max_context_is_refused_before_a_byte_is_copied(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "data").mkdir()
    for name, size in (("big.bin", 5 * 1024**2), ("mid.bin", 3 * 1024**2),
                       ("small.bin", 1024**2), ("tiny.bin", 10)):
        with (root / "data" / name).open("wb") as handle:
            handle.truncate(size)
    copying: list[bool] = []
    with pytest.raises(BuildFailed) as caught:
        snapshot(root, rules(root, max_bytes=4 * 1024**2),
                 hooks=Hooks(copying=lambda: copying.append(True)))
    message = str(caught.value)
    assert "is 9.0 MiB, over build.max_context (4.0 MiB)" in message
    assert "data/big.bin (5.0 MiB), data/mid.bin (3.0 MiB), data/small.bin (1.0 MiB)" \
        in message
    assert "tiny.bin" not in message
    assert copying == []
    assert "data/big.bin" in names(snapshot(root, rules(root, max_bytes=10 * 1024**2)))


def test_a_sparse_file_stays_sparse_in_the_snapshot(tmp_path: Path) -> None:
    root = project(tmp_path)
    with (root / "sparse.bin").open("wb") as handle:
        handle.truncate(256 * 1024**2)
        handle.seek(100 * 1024**2)
        handle.write(b"data in the middle")
    found = snapshot(root)
    assert found._file is not None
    on_disk = os.fstat(found._file.fileno()).st_blocks * 512
    assert on_disk < 8 * 1024**2, f"the snapshot takes {on_disk} bytes on disk"
    stream = found.stream()
    assert len(stream) > 256 * 1024**2
    seen, tail = 0, b""
    while chunk := stream.read(1024**2):
        seen += len(chunk)
        if b"data in the middle" in tail + chunk:
            break
        tail = chunk[-32:]
    assert 100 * 1024**2 < seen < 102 * 1024**2  # the bytes where they were, zeros before


def test_a_snapshot_without_content_copies_nothing(tmp_path: Path) -> None:
    root = project(tmp_path)
    found = snapshot(root, content=False)
    assert found.fingerprint == snapshot(root).fingerprint
    with pytest.raises(RuntimeError, match="cannot be streamed"):
        found.stream()


def test_heavy_folders_that_are_not_excluded_are_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = project(tmp_path)
    (root / "node_modules" / "x").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        snapshot(root)
    assert "includes node_modules: add them to .dockerignore" in caplog.text


def test_a_name_that_is_not_utf8_is_kept_and_hashed(tmp_path: Path) -> None:
    root = project(tmp_path)
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1, as an old archive may hold
    (root / name).write_bytes(b"bytes")
    found = snapshot(root)
    assert name in names(found)
    assert name in streamed(found)
