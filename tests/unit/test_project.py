"""What tagmatrix reads from a project folder: packaging facts, dependency groups,
requirements files and what they include, Dockerfile FROM lines — all as hostile
input (no symlink out of the project, no path leaving it, capped sizes)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.project import (
    MAX_FILE,
    ProjectError,
    ProjectInfo,
    read_text,
    requirement_files,
    unpinned_from,
)
from orchestrator.settings import ProjectKind

Write = Callable[[str, str], Path]

PYPROJECT = """
    [build-system]
    requires = ["hatchling"]
    build-backend = "hatchling.build"

    [project]
    name = "demo"
    dynamic = ["version"]
    dependencies = ["attrs>=22"]
    [project.optional-dependencies]
    tests = ["pytest>=8"]

    [dependency-groups]
    test = ["hypothesis", {include-group = "base"}]
    base = ["pretend; python_version >= '3.10'"]
    loop = [{include-group = "loop"}]
"""


def test_a_pyproject_with_metadata_is_a_packaged_project(write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", PYPROJECT)
    info = ProjectInfo.read(tmp_path)
    assert info.packaged
    assert info.name == "demo"
    assert info.extras == frozenset({"tests"})
    assert info.kind(ProjectKind.AUTO) is ProjectKind.SDIST
    assert info.kind(ProjectKind.WHEEL) is ProjectKind.WHEEL


def test_a_folder_without_metadata_is_an_application(write: Write, tmp_path: Path) -> None:
    write("requirements.txt", "pytest\n")
    write("pyproject.toml", "[dependency-groups]\ntest = ['pytest']\n")  # groups only
    info = ProjectInfo.read(tmp_path)
    assert not info.packaged
    assert info.has_requirements_txt
    assert info.kind(ProjectKind.AUTO) is ProjectKind.NONE
    with pytest.raises(ProjectError, match=r"no pyproject\.toml"):
        info.check_buildable(ProjectKind.SDIST)
    assert info.resolve_groups(["test"]) == ("pytest",)


def test_setup_py_alone_makes_a_packaged_project_with_unknown_extras(
        write: Write, tmp_path: Path) -> None:
    write("setup.py", "from setuptools import setup\nsetup()\n")
    info = ProjectInfo.read(tmp_path)
    assert info.packaged
    assert info.extras is None
    info.check_extras(["anything"])  # unknowable without running setup.py: not refused


def test_groups_resolve_with_include_group_and_errors_name_the_group(
        write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", PYPROJECT)
    info = ProjectInfo.read(tmp_path)
    assert info.resolve_groups(["test"]) == ("hypothesis", 'pretend; python_version >= "3.10"')
    with pytest.raises(ProjectError, match=r"'tests' is not in") as missing:
        info.resolve_groups(["tests"])
    assert missing.value.hint == "did you mean 'test'?"
    with pytest.raises(ProjectError, match=r"[Cc]yclic"):
        info.resolve_groups(["loop"])


def test_unknown_static_extras_are_refused_with_a_suggestion(
        write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", PYPROJECT)
    with pytest.raises(ProjectError, match="no extra 'test'") as refused:
        ProjectInfo.read(tmp_path).check_extras(["test"])
    assert refused.value.hint == "did you mean 'tests'?"


def test_invalid_toml_is_an_error_not_a_traceback(write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", "[project\nname = 1\n")
    with pytest.raises(ProjectError, match="not valid TOML"):
        ProjectInfo.read(tmp_path)


def test_requirements_files_bring_what_they_include(write: Write, tmp_path: Path) -> None:
    write("requirements/test.txt", textwrap.dedent("""
        # tests
        -r base.txt
        --constraint=../constraints.txt
        --find-links ../wheels
        pytest>=8 \\
            ; python_version >= "3.10"
        ./vendor/helper
        requests @ https://example.invalid/requests.tar.gz
        -e git+https://example.invalid/repo.git#egg=repo
    """))
    write("requirements/base.txt", "attrs\n")
    write("constraints.txt", "attrs<30\n")
    write("wheels/x-1-py3-none-any.whl", "")
    write("vendor/helper/setup.py", "")
    assert set(requirement_files(tmp_path, ["requirements/test.txt"])) == {
        "requirements/test.txt", "requirements/base.txt", "constraints.txt", "wheels",
        "vendor/helper"}


@pytest.mark.parametrize("line", ["-e .", ".", ".[tests]", "-e .[tests]", "--editable=./"])
def test_a_requirements_file_that_installs_the_project_itself_is_refused(
        write: Write, tmp_path: Path, line: str) -> None:
    write("dev.txt", f"pytest\n{line}\n")
    with pytest.raises(ProjectError, match="installs the project itself") as refused:
        requirement_files(tmp_path, ["dev.txt"])
    assert refused.value.where == "dev.txt:2"


def test_requirements_paths_cannot_leave_the_project(write: Write, tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("secret\n")
    (root / "a.txt").write_text("-r ../outside.txt\n")
    with pytest.raises(ProjectError, match="outside the project"):
        requirement_files(root, ["a.txt"])
    with pytest.raises(ProjectError, match="relative to the project"):
        requirement_files(root, ["/etc/passwd"])
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(ProjectError, match="symbolic link"):
        requirement_files(root, ["link.txt"])
    with pytest.raises(ProjectError, match="does not exist"):
        requirement_files(root, ["missing.txt"])


def test_reading_is_capped_and_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"x" * (MAX_FILE + 1))
    with pytest.raises(ProjectError, match="cap"):
        read_text(tmp_path, "big.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ProjectError, match="not a regular file"):
        read_text(tmp_path, "folder")
    assert read_text(tmp_path, "absent.txt") is None


@pytest.mark.parametrize(("dockerfile", "expected"), [
    ("ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\n", None),
    ("ARG PYTHON_TAG=3.12\nFROM python:$PYTHON_TAG AS test\n", None),
    ("# syntax=docker/dockerfile:1\nFROM \\\n  127.0.0.1:5000/library/python:3.12-slim\n",
     (2, "FROM 127.0.0.1:5000/library/python:3.12-slim")),
    ("FROM python:3.12-slim\nFROM ${PYTHON_IMAGE}\n", (1, "FROM python:3.12-slim")),
])
def test_the_first_from_must_use_the_cells_image(
        dockerfile: str, expected: tuple[int, str] | None) -> None:
    assert unpinned_from(dockerfile) == expected
