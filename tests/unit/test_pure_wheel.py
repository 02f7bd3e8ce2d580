"""install.project auto: the wheel built once from the sdist serves every cell when it is
pure Python; the plan asks for it only under auto, and the sdist stays otherwise.

The in-container scripts are exercised here on the host's interpreter with their build
stubbed (``build_wheel``): what is decided, not pypa/build itself (that runs on the
engine in tests/integration/test_library.py)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.dockerfile import cell_context, project_dockerfile
from orchestrator.engine.records import install_record
from orchestrator.incontainer import artifact, install
from orchestrator.jobs import InstallStep
from orchestrator.plan import make_plan
from orchestrator.settings import ProjectKind
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]

PYPROJECT = """
    [build-system]
    requires = ["setuptools>=69"]
    build-backend = "setuptools.build_meta"
    [project]
    name = "demo"
    version = "1.0"
"""


def sdist(folder: Path, *members: str) -> Path:
    path = folder / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in ("demo-1.0/PKG-INFO", *(f"demo-1.0/{m}" for m in members)):
            data = b"Metadata-Version: 2.4\nName: demo\nVersion: 1.0\n"
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    return path


def built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheel_name: str) -> list[Path]:
    """Stub the wheel build: it 'builds' ``wheel_name``; returns the sdists it was asked
    to build from (empty: no wheel was built)."""
    asked: list[Path] = []

    def build_wheel(source: Path, outdir: str) -> Path:
        asked.append(source)
        wheel = Path(outdir) / wheel_name
        wheel.write_bytes(b"PK")
        return wheel

    monkeypatch.setattr(artifact, "build_wheel", build_wheel)
    return asked


def test_a_pure_wheel_with_static_dependencies_replaces_the_sdist(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = sdist(tmp_path, "src/demo/__init__.py", "tests/test_demo.py")
    asked = built(monkeypatch, tmp_path, "demo-1.0-py3-none-any.whl")
    assert artifact.choose(source, True, str(tmp_path)).name == "demo-1.0-py3-none-any.whl"
    assert asked == [source]


@pytest.mark.parametrize("member", ["src/demo/_speedups.c", "src/demo/fast.pyx",
                                    "rust/src/lib.rs", "Cargo.toml", "CMakeLists.txt",
                                    "meson.build", "src/demo/ext.cpp"])
def test_sources_to_compile_keep_the_sdist_without_building_a_wheel(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        member: str) -> None:
    source = sdist(tmp_path, "src/demo/__init__.py", member)
    asked = built(monkeypatch, tmp_path, "demo-1.0-py3-none-any.whl")
    assert artifact.choose(source, True, str(tmp_path)) == source
    assert asked == []  # a compiled project's wheel is never built for nothing
    assert f"it has sources to compile ({member})" in capsys.readouterr().out


def test_dynamic_dependencies_keep_the_sdist(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = sdist(tmp_path, "setup.py")
    asked = built(monkeypatch, tmp_path, "demo-1.0-py3-none-any.whl")
    assert artifact.choose(source, False, str(tmp_path)) == source
    assert asked == []
    assert "not static metadata (PEP 643)" in capsys.readouterr().out


def test_a_wheel_that_is_not_pure_keeps_the_sdist(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = sdist(tmp_path, "setup.py")
    built(monkeypatch, tmp_path, "demo-1.0-cp313-cp313-linux_x86_64.whl")
    assert artifact.choose(source, True, str(tmp_path)) == source
    assert "its wheel is not pure Python (demo-1.0-cp313-cp313-linux_x86_64.whl)" \
        in capsys.readouterr().out


def test_only_auto_asks_for_a_pure_wheel_and_each_gets_its_own_project_image(
        write: Write) -> None:
    write("pyproject.toml", PYPROJECT)
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          how: [auto, sdist]
          include:
            - {how: sdist, install: {project: sdist}}
    """))
    auto, sdist_job = make_plan(config, Catalogue.builtin()).jobs
    assert auto.build is not None
    assert sdist_job.build is not None
    assert auto.build.install is not None
    assert sdist_job.build.install is not None
    assert auto.build.install.kind is sdist_job.build.install.kind is ProjectKind.SDIST
    assert (auto.build.install.pure_wheel, sdist_job.build.install.pure_wheel) == (True, False)
    assert auto.build.project is not None
    assert sdist_job.build.project is not None
    assert auto.build.project.key != sdist_job.build.project.key
    run = project_dockerfile(auto.build.project).splitlines()[-1].removeprefix("RUN ")
    assert json.loads(json.loads(run)[3])["pure_wheel"] is True
    assert "pure_wheel" not in project_dockerfile(sdist_job.build.project)
    step = json.loads(cell_context(auto.build)["tagmatrix/step-project.json"])
    assert step == {"data": "/tmp/tagmatrix-install", "dist": "/tmp/tagmatrix-dist",
                    "kind": "sdist", "pure_wheel": True}


@pytest.mark.parametrize(("pure_wheel", "artifact_name", "installed"), [
    (True, "demo-1.0-py3-none-any.whl", "wheel demo-1.0-py3-none-any.whl"),
    (True, "demo-1.0.tar.gz", "sdist demo-1.0.tar.gz"),
    (False, "demo-1.0.tar.gz", "sdist demo-1.0.tar.gz"),
])
def test_the_cell_installs_the_artifact_the_project_image_left(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pure_wheel: bool,
        artifact_name: str, installed: str) -> None:
    (tmp_path / artifact_name).write_bytes(b"")
    said: list[tuple[list[str], str]] = []
    monkeypatch.setattr(install, "run", lambda argv, what, cwd=None: said.append((argv, what)))
    install.project({"kind": "sdist", "dist": str(tmp_path),
                     **({"pure_wheel": True} if pure_wheel else {})})
    (argv, what), _check = said
    assert what == f"installing the project ({installed})"
    assert argv[-1] == str(tmp_path / artifact_name)


def test_the_project_step_names_its_artifact_in_the_record(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dist, data = tmp_path / "dist", tmp_path / "data"
    dist.mkdir()
    data.mkdir()
    (dist / "demo-1.0-py3-none-any.whl").write_bytes(b"")
    (data / "record.json").write_text(json.dumps({"resolver": "pip 26.3"}))
    monkeypatch.setattr(install, "run", lambda argv, what, cwd=None: None)
    install.project({"kind": "sdist", "dist": str(dist), "data": str(data), "pure_wheel": True})
    assert json.loads((data / "record.json").read_text()) == {
        "resolver": "pip 26.3", "artifact": "demo-1.0-py3-none-any.whl"}


@pytest.mark.parametrize(("kind", "pure_wheel", "said", "reported"), [
    (ProjectKind.SDIST, True, "demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl"),
    (ProjectKind.SDIST, True, "demo-1.0.tar.gz", "demo-1.0.tar.gz"),
    (ProjectKind.SDIST, False, "demo-1.0.tar.gz", "demo-1.0.tar.gz"),
    (ProjectKind.SDIST, False, "demo-1.0-py3-none-any.whl", ""),  # not what the plan said
    (ProjectKind.WHEEL, False, "demo-1.0.tar.gz", ""),
    (ProjectKind.EDITABLE, False, "demo-1.0.tar.gz", ""),
    (ProjectKind.SDIST, True, "../../etc/passwd.whl", ""),  # not a file name
    (ProjectKind.SDIST, True, "demo\n[tagmatrix] forged.whl", ""),
])
def test_the_reports_take_an_artifact_only_of_the_planned_kind_and_shape(
        kind: ProjectKind, pure_wheel: bool, said: str, reported: str) -> None:
    step = InstallStep(kind=kind, pure_wheel=pure_wheel)
    assert install_record(step, {"resolver": "pip 26.3", "artifact": said}).artifact == reported


def test_an_explicit_sdist_never_installs_a_wheel_left_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo-1.0-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(SystemExit):
        install.project({"kind": "sdist", "dist": str(tmp_path)})
    assert "expected one .tar.gz" in capsys.readouterr().out
