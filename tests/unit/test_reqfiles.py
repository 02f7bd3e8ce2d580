"""Requirements files read on the host as pip reads them: each file once, within caps,
and a line the host cannot read the way pip will (pip's ${VAR} expansion, a file
option sharing its line) refused rather than read differently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import project, reqfiles
from orchestrator.project import ProjectError
from orchestrator.reqfiles import (
    MAX_REQUIREMENT_FILES,
    MAX_REQUIREMENT_LINES,
    logical_lines,
    parse_line,
    requirement_files,
)

Write = Callable[[str, str], Path]


def test_a_fan_out_reads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"r{i:03d}.txt" for i in range(MAX_REQUIREMENT_FILES)]
    body = "".join(f"-r {n}\n" for n in names) * 2
    for name in names:
        (tmp_path / name).write_text(body)
    reads: list[str] = []
    read_text = project.read_text

    def counting(root: Path, relative: str) -> str | None:
        reads.append(str(relative))
        return read_text(root, relative)

    monkeypatch.setattr(reqfiles, "read_text", counting)
    assert set(requirement_files(tmp_path, ["r000.txt", "./r000.txt"])) == set(names)
    assert sorted(reads) == names


def test_lines_in_all_are_capped(tmp_path: Path) -> None:
    # 200 files of 600 lines, every line naming a file: 120,000 lines, each file once
    for i in range(MAX_REQUIREMENT_FILES):
        (tmp_path / f"r{i:03d}.txt").write_text(
            "".join(f"-r r{j % MAX_REQUIREMENT_FILES:03d}.txt\n" for j in range(i, i + 600)))
    with pytest.raises(ProjectError, match=f"more than {MAX_REQUIREMENT_LINES} lines") as cap:
        requirement_files(tmp_path, ["r000.txt"])
    assert cap.value.where.startswith("r")


def test_a_variable_pip_would_expand_is_refused(write: Write, tmp_path: Path) -> None:
    write("${HOME}/x.txt", "pytest\n")  # the checkout has a folder literally so named
    write("a.txt", "-r ${HOME}/x.txt\n")
    with pytest.raises(ProjectError, match=r"\$\{HOME\} is expanded by pip") as refused:
        requirement_files(tmp_path, ["a.txt"])
    assert refused.value.where == "a.txt:1"
    write("b.txt", "pkg @ https://${TOKEN}@example.invalid/pkg.whl\n")
    with pytest.raises(ProjectError, match=r"\$\{TOKEN\}"):
        requirement_files(tmp_path, ["b.txt"])
    write("c.txt", "pytest  # costs $5, see ${docs} and $HOME\n")  # not pip's ${NAME}
    assert requirement_files(tmp_path, ["c.txt"]) == ("c.txt",)


@pytest.mark.parametrize("line", ["--pre -r ../x.txt", "-r a.txt -c b.txt",
                                  "--index-url https://x.invalid -r sub.txt",
                                  "-r sub.txt extra", "-e ./pkg -e ./other",
                                  "--frobnicate -r sub.txt", "--requ sub.txt"])
def test_a_file_option_sharing_its_line_is_refused(
        write: Write, tmp_path: Path, line: str) -> None:
    write("sub.txt", "pytest\n")
    write("a.txt", f"pytest\n{line}\n")
    with pytest.raises(ProjectError, match=r"pip would read it differently|cannot read "
                                           r"this line as pip would") as refused:
        requirement_files(tmp_path, ["a.txt"])
    assert refused.value.where == "a.txt:2"
    assert refused.value.hint is not None
    assert "a line of its own" in refused.value.hint


@pytest.mark.parametrize("line", ["-rsub.txt", "--requirement=sub.txt", "--requirem sub.txt",
                                  '-r "sub.txt"', "-r \\\n   sub.txt", "-c sub.txt",
                                  "--cons=sub.txt"])
def test_file_options_are_read_as_pip_reads_them(
        write: Write, tmp_path: Path, line: str) -> None:
    write("sub.txt", "pytest\n")
    write("a.txt", f"{line}\n")
    assert requirement_files(tmp_path, ["a.txt"]) == ("a.txt", "sub.txt")


def test_options_after_a_requirement_are_not_followed_as_pip_does_not(
        write: Write, tmp_path: Path) -> None:
    write("a.txt", "attrs -r ../outside.txt\nrequests --hash=sha256:00\n--pre\n"
                   "--only-binary :all:\n--brand-new-pip-option value\n")
    assert requirement_files(tmp_path, ["a.txt"]) == ("a.txt",)


@pytest.mark.parametrize(("line", "parsed"), [
    ("-f ./wheels", ("f", "./wheels")),
    ("--find-links=wheels", ("f", "wheels")),
    ("-e ./pkg", ("e", "./pkg")),
    ("--edit ./pkg", ("e", "./pkg")),
    ("./vendor/helper", ("", "./vendor/helper")),
    ("--no-index", ("-", "")),
])
def test_each_line_gets_the_kind_pip_gives_it(line: str, parsed: tuple[str, str]) -> None:
    assert parse_line(line, "a.txt:1") == parsed


def test_logical_lines_join_and_drop_comments_as_pip_does() -> None:
    text = "a \\\n  b\n# note \\\nc  # trailing\n\\\n\n  \nd#not-a-comment\n"
    assert list(logical_lines(text)) == [(1, "a   b"), (4, "c"), (8, "d#not-a-comment")]
