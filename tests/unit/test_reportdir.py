"""The reports folder: where tagmatrix may write, never through a link, one run at a time."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import UsageError
from orchestrator.files import atomic_write
from orchestrator.reportdir import MARKER, ReportsFolder

MATRIX = 'matrix: {python: ["3.12"]}\n'


def folder(path: Path, **kwargs: Path) -> ReportsFolder:
    found = ReportsFolder(path, **kwargs)
    found.prepare()
    return found


@pytest.mark.parametrize("path", ["/", "/etc", "/tmp", "/var", "/sys/kernel/reports",
                                  "/dev/shm/reports", "/proc/1/reports"])
def test_system_folders_are_refused(path: str) -> None:
    with pytest.raises(UsageError, match="system folder"):
        ReportsFolder(Path(path))


def test_the_project_folder_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>my project's page</h1>")
    with pytest.raises(UsageError, match="is the project folder itself"):
        ReportsFolder(tmp_path, project=tmp_path)


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("mine")
    with pytest.raises(UsageError, match=r"holds files tagmatrix did not write \(index.html\)"):
        ReportsFolder(tmp_path / "docs")
    folder(tmp_path / "new")  # absent: created
    folder(tmp_path / "new")  # ours now (its marker): fine again


def test_a_fresh_checkouts_reports_folder_is_taken(tmp_path: Path) -> None:
    # a clone's reports/ holds only git's placeholder (and, after make bench, its
    # figures): `make demo` must run there, and leave them
    checkout = tmp_path / "reports"
    checkout.mkdir()
    (checkout / ".gitkeep").write_text("")
    (checkout / "bench.json").write_text("{}")
    folder(checkout)
    assert (checkout / ".gitkeep").is_file()
    assert (checkout / "bench.json").read_text() == "{}"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / ".gitkeep").write_text("")
    (tmp_path / "site" / "index.html").write_text("mine")
    with pytest.raises(UsageError, match=r"did not write \(index.html\)"):
        ReportsFolder(tmp_path / "site")


def test_links_are_refused_at_every_level(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "linked").symlink_to(outside)
    with pytest.raises(UsageError, match="symbolic link"):
        ReportsFolder(tmp_path / "linked")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "results.json").write_text("{}")  # a previous run's folder (or a checkout's)
    (reports / "logs").symlink_to(outside)
    with pytest.raises(UsageError, match=r"logs is a symbolic link"):
        folder(reports)
    (reports / "logs").unlink()
    (reports / "logs").write_text("a file")
    with pytest.raises(UsageError, match=r"logs is a file, not a folder"):
        folder(reports)


def test_a_second_run_is_refused_naming_the_first(tmp_path: Path) -> None:
    first, second = folder(tmp_path / "r"), ReportsFolder(tmp_path / "r")
    first.lock("20261128T000000Z-aaaaaa")
    try:
        with pytest.raises(UsageError, match=r"in use by another run \(run "
                                             r"20261128T000000Z-aaaaaa, pid \d+"):
            second.lock("20261128T000001Z-bbbbbb")
    finally:
        first.unlock()
    second.lock("20261128T000001Z-bbbbbb")  # free again
    second.unlock()


def test_stale_cell_files_go_and_links_are_unlinked_not_followed(tmp_path: Path) -> None:
    reports = folder(tmp_path / "r")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "r" / "logs" / "old.log").write_text("old")
    (tmp_path / "r" / "logs" / "gone.log").symlink_to(victim)
    (tmp_path / "r" / "logs" / "_project.linux-sdist.log").write_text("run-level")
    (tmp_path / "r" / "cells" / "keep.xml").write_text("<x/>")
    (tmp_path / "r" / "cells" / "odd.xml").mkdir()  # a folder named like a cell file
    assert sorted(reports.remove_stale(["keep"])) == ["logs/gone.log", "logs/old.log"]
    assert (tmp_path / "r" / "cells" / "odd.xml").is_dir()
    assert victim.read_text() == "keep me"
    assert (tmp_path / "r" / "logs" / "_project.linux-sdist.log").exists()


def test_report_files_honour_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write(tmp_path / "results.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644


@pytest.mark.parametrize(("reports", "message"), [
    ("/", "system folder"), (".", "is the project folder itself"),
    ("matrix.yaml", "is a file, not a folder")])
def test_run_refuses_a_bad_reports_folder_before_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], reports: str, message: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    assert main(["run", "--reports", reports]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_lock_refuses_an_output_that_is_not_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    assert main(["lock", "-f", str(tmp_path / "matrix.yaml"), "-o", "/proc/version"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_a_new_reports_folder_ignores_itself_for_git(tmp_path: Path) -> None:
    reports = folder(tmp_path / "r")
    assert (tmp_path / "r" / ".gitignore").read_text().splitlines()[-1] == "*"
    (tmp_path / "r" / ".gitignore").write_text("!keep-me\n")  # the user's own: kept
    reports.prepare()
    assert (tmp_path / "r" / ".gitignore").read_text() == "!keep-me\n"


def test_missing_parents_of_the_reports_folder_are_created(tmp_path: Path) -> None:
    folder(tmp_path / "out" / "nightly" / "reports")
    assert (tmp_path / "out" / "nightly" / "reports" / MARKER).is_file()
