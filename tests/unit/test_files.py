"""Report files are replaced in one rename: a failed write never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.files import atomic_write


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "junit.xml"
    atomic_write(target, "<old/>")

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "<new/>" * 1000)
    assert target.read_text() == "<old/>"
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_a_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "results.json"
    atomic_write(target, b"{}")
    atomic_write(target, "[]")
    assert target.read_text() == "[]"
