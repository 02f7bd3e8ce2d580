"""What tagmatrix reads from a project folder: packaging facts, dependency groups,
requirements files and what they include, Dockerfile FROM lines — all as hostile
input (no symlink out of the project, no path leaving it, capped sizes)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.depgroups import MAX_GROUP_REQUIREMENTS, MAX_GROUP_WORK, MAX_INCLUDE_DEPTH
from orchestrator.project import (
    MAX_FILE,
    ProjectError,
    ProjectInfo,
    read_text,
    unpinned_from,
)
from orchestrator.reqfiles import requirement_files
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
    with pytest.raises(ProjectError, match=r"in a cycle: loop -> loop"):
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


def _doubling(levels: int) -> str:
    """g0 includes g1 twice, g1 includes g2 twice, ...: 2^levels copies of pytest to a
    resolver that keeps duplicates (the attack that took 22 GB at 40 levels)."""
    lines = ["[dependency-groups]"]
    lines += [f'g{i} = [{{include-group = "g{i + 1}"}}, {{include-group = "g{i + 1}"}}, '
              '"pytest"]' for i in range(levels)]
    return "\n".join([*lines, f'g{levels} = ["pytest"]', ""])


def test_groups_that_include_each_other_twice_resolve_once_each(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(_doubling(20))  # 2^21 - 1 copies, unbounded
    info = ProjectInfo.read(tmp_path)
    assert info.resolve_groups(["g0"]) == ("pytest",)
    (tmp_path / "pyproject.toml").write_text(_doubling(60))  # 2^61: only if deduplicated
    assert ProjectInfo.read(tmp_path).resolve_groups(["g0", "g7"]) == ("pytest",)


def test_groups_are_resolved_once_per_project_not_once_per_cell(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dependency_groups import DependencyGroupResolver

    looked: list[str] = []
    lookup = DependencyGroupResolver.lookup

    def counting(self: DependencyGroupResolver, group: str) -> Any:
        looked.append(group)
        return lookup(self, group)

    monkeypatch.setattr(DependencyGroupResolver, "lookup", counting)
    (tmp_path / "pyproject.toml").write_text(_doubling(5))
    info = ProjectInfo.read(tmp_path)
    for _ in range(100):  # a plan asks for every cell
        assert info.resolve_groups(["g0"]) == ("pytest",)
    assert sorted(looked) == [f"g{i}" for i in range(6)]


def test_include_chains_are_capped_not_a_recursion_error(tmp_path: Path) -> None:
    lines = ["[dependency-groups]", *(f'g{i} = [{{include-group = "g{i + 1}"}}]'
                                      for i in range(20_000)), 'g20000 = ["pytest"]']
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ProjectError, match=f"more than {MAX_INCLUDE_DEPTH} levels deep"):
        ProjectInfo.read(tmp_path).resolve_groups(["g0"])
    shallow = ProjectInfo.read(tmp_path)
    assert shallow.resolve_groups([f"g{20_000 - MAX_INCLUDE_DEPTH}"]) == ("pytest",)


def test_a_long_cycle_is_named_along_its_path(write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", """
        [dependency-groups]
        a = ["pytest", {include-group = "B"}]
        b = [{include-group = "c"}]
        c = [{include-group = "a"}]
    """)
    with pytest.raises(ProjectError, match="in a cycle: a -> b -> c -> a") as refused:
        ProjectInfo.read(tmp_path).resolve_groups(["a"])
    assert refused.value.hint == "PEP 735 makes a cycle an error: break it"


def test_group_size_and_work_are_capped(tmp_path: Path) -> None:
    many = ", ".join(f'"p{i}"' for i in range(MAX_GROUP_REQUIREMENTS + 1))
    (tmp_path / "pyproject.toml").write_text(f"[dependency-groups]\nbig = [{many}]\n")
    with pytest.raises(ProjectError, match=f"more than {MAX_GROUP_REQUIREMENTS} distinct"):
        ProjectInfo.read(tmp_path).resolve_groups(["big"])
    base = ", ".join(f'"p{i}"' for i in range(1000))
    fan = [f'h{i} = [{{include-group = "base"}}, "q{i}"]' for i in range(1100)]
    top = ", ".join(f'{{include-group = "h{i}"}}' for i in range(1100))
    (tmp_path / "pyproject.toml").write_text("\n".join(
        ["[dependency-groups]", f"base = [{base}]", *fan, f"top = [{top}]", ""]))
    with pytest.raises(ProjectError, match=f"copied more than {MAX_GROUP_WORK} requirements"):
        ProjectInfo.read(tmp_path).resolve_groups(["top"])


def test_a_missing_include_names_both_groups(write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", '[dependency-groups]\ntest = [{include-group = "base"}]\n')
    with pytest.raises(ProjectError, match="'test' includes 'base', which does not exist"):
        ProjectInfo.read(tmp_path).resolve_groups(["test"])


def test_deeply_nested_toml_is_a_project_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("x = " + "[" * 300_000 + "\n")
    with pytest.raises(ProjectError, match="nests arrays or tables too deeply"):
        ProjectInfo.read(tmp_path)


@pytest.mark.parametrize("extra", ["tests]; import os", "a b", "-x", "x-", "", "tésts"])
def test_extras_must_be_names_even_when_the_metadata_is_dynamic(
        write: Write, tmp_path: Path, extra: str) -> None:
    write("setup.py", "from setuptools import setup\nsetup()\n")  # extras unknowable
    with pytest.raises(ProjectError, match="is not an extra name"):
        ProjectInfo.read(tmp_path).check_extras([extra])


def test_extras_compare_as_normalised_names(write: Write, tmp_path: Path) -> None:
    write("pyproject.toml", PYPROJECT.replace("tests = [", "Test_Suite = ["))
    ProjectInfo.read(tmp_path).check_extras(["test-suite", "TEST.suite"])  # PEP 685
