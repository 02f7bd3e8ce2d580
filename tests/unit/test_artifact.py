"""The project's artifact: what the project image leaves for the cells (after the build
backend, the project's own code, ran there as root), what a cell installs, and what the
reports say it installed (results.json's install.artifact, taken back only when it is a
distribution file's name of the kind the plan installs). The in-container scripts run
here on the host's interpreter."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from orchestrator.engine.records import install_record
from orchestrator.incontainer import artifact, install
from orchestrator.jobs import InstallStep
from orchestrator.settings import ProjectKind


def test_the_project_step_names_its_artifact_in_the_record(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dist, data = tmp_path / "dist", tmp_path / "data"
    dist.mkdir()
    data.mkdir()
    (dist / "demo-1.0.tar.gz").write_bytes(b"")
    (data / "record.json").write_text(json.dumps({"resolver": "pip 26.3"}))
    said: list[str] = []
    monkeypatch.setattr(install, "run", lambda argv, what, cwd=None: said.append(what))
    install.project({"kind": "sdist", "dist": str(dist), "data": str(data)})
    assert said[0] == "installing the project (sdist demo-1.0.tar.gz)"
    assert json.loads((data / "record.json").read_text()) == {
        "resolver": "pip 26.3", "artifact": "demo-1.0.tar.gz"}


@pytest.mark.parametrize(("kind", "said", "reported"), [
    (ProjectKind.SDIST, "demo-1.0.tar.gz", "demo-1.0.tar.gz"),
    (ProjectKind.WHEEL, "demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl"),
    (ProjectKind.SDIST, "demo-1.0-py3-none-any.whl", ""),  # not what the plan installs
    (ProjectKind.WHEEL, "demo-1.0.tar.gz", ""),
    (ProjectKind.EDITABLE, "demo-1.0.tar.gz", ""),
    (ProjectKind.SDIST, "../../etc/passwd.tar.gz", ""),  # not a file name
    (ProjectKind.SDIST, "demo\n[tagmatrix] forged.tar.gz", ""),
    (ProjectKind.SDIST, 42, ""),
])
def test_the_reports_take_an_artifact_only_of_the_planned_kind_and_shape(
        kind: ProjectKind, said: object, reported: str) -> None:
    step = InstallStep(kind=kind)
    assert install_record(step, {"resolver": "pip 26.3", "artifact": said}).artifact == reported


def wheel(folder: Path, name: str, *members: str, purelib: str = "true") -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo-1.0.dist-info/WHEEL",
                         f"Wheel-Version: 1.0\nRoot-Is-Purelib: {purelib}\nTag: py3-none-any\n")
        for member in members:
            archive.writestr(member, b"")
    return path


@pytest.mark.parametrize(("name", "members", "purelib", "why"), [
    ("demo-1.0-py3-none-any.whl", ("demo/__init__.py",), "true", None),
    ("demo-1.0-cp313-cp313-linux_x86_64.whl", ("demo/__init__.py",), "false",
     "demo-1.0-cp313-cp313-linux_x86_64.whl"),
    # a build that copied a compiled module in, under a pure tag (setuptools tags it so)
    ("demo-1.0-py3-none-any.whl", ("demo/_speedups.cpython-313-x86_64-linux-gnu.so",), "true",
     "demo-1.0-py3-none-any.whl holds demo/_speedups.cpython-313-x86_64-linux-gnu.so"),
    ("demo-1.0-py3-none-any.whl", ("demo/_fast.pyd",), "true",
     "demo-1.0-py3-none-any.whl holds demo/_fast.pyd"),
    ("demo-1.0-py3-none-any.whl", ("demo/__init__.py",), "false",
     "demo-1.0-py3-none-any.whl says Root-Is-Purelib: false"),
])
def test_project_wheel_is_pure_only_by_its_tag_its_wheel_file_and_its_files(
        tmp_path: Path, name: str, members: tuple[str, ...], purelib: str,
        why: str | None) -> None:
    assert artifact.impure(wheel(tmp_path, name, *members, purelib=purelib)) == why


def test_what_the_backend_left_where_the_cells_copy_from_is_gone(tmp_path: Path) -> None:
    # a build backend planted a link in dist/ to a wheel of its own under deps/
    deps, dist = tmp_path / "deps", tmp_path / "dist"
    deps.mkdir()
    dist.mkdir()
    (deps / "zz-planted.whl").write_bytes(b"not built from the sdist")
    (dist / "demo-1.0.tar.gz").symlink_to(deps / "zz-planted.whl")
    link = tmp_path / "deps-link"
    link.symlink_to(tmp_path)
    for folder in (deps, dist, link):
        artifact.fresh(folder)
        assert folder.is_dir()
        assert not folder.is_symlink()
        assert list(folder.iterdir()) == []
    assert (tmp_path / "deps-link").is_dir()


def test_a_cell_refuses_an_artifact_that_is_a_link(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "elsewhere.tar.gz").write_bytes(b"")
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "demo-1.0.tar.gz").symlink_to(tmp_path / "elsewhere.tar.gz")
    with pytest.raises(SystemExit):
        install.project({"kind": "sdist", "dist": str(dist)})
    assert "demo-1.0.tar.gz in " in (said := capsys.readouterr().out)
    assert "is not a regular file" in said
