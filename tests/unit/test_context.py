"""The build context: .dockerignore honoured, .git and virtualenvs warned about, and a
content fingerprint that ignores modification times."""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import pytest

from orchestrator.celllog import CellLog
from orchestrator.engine.dockerimage import ImageStore, context_fingerprint


def tar_of(tmp_path: Path, project: Path) -> tuple[bytes, CellLog]:
    store = ImageStore(None, None, None)  # type: ignore[arg-type]  # tarring needs no engine
    log = CellLog(tmp_path / "cell.log")
    return store._context_tar(project, log), log


def names(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return set(archive.getnames())


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "app.py").write_text("print('hi')\n")
    return root


def test_git_and_virtualenvs_in_the_context_are_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        data, log = tar_of(tmp_path, project(tmp_path))
    log.close()
    assert {".git/HEAD", "app.py"} <= names(data)
    assert "includes .git, .venv: add them to .dockerignore" in caplog.text


def test_dockerignore_is_honoured(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = project(tmp_path)
    (root / ".dockerignore").write_text("# comment\n.git\n.venv\n")
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        data, log = tar_of(tmp_path, root)
    log.close()
    assert not any(n.startswith((".git", ".venv")) for n in names(data))
    assert "app.py" in names(data)
    assert "dockerignore" not in caplog.text


def test_fingerprint_follows_content_not_mtimes(tmp_path: Path) -> None:
    root = project(tmp_path)
    first, log = tar_of(tmp_path, root)
    log.close()
    os.utime(root / "app.py", (0, 0))
    touched, log = tar_of(tmp_path, root)
    log.close()
    (root / "app.py").write_text("print('changed')\n")
    changed, log = tar_of(tmp_path, root)
    log.close()
    assert first != touched  # the tar bytes do change with the mtime ...
    assert context_fingerprint(first) == context_fingerprint(touched)  # ... the project not
    assert context_fingerprint(changed) != context_fingerprint(first)
