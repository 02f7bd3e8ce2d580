"""What a cell's build trusts (no Docker): tagmatrix's installer reaches a cell from the
cell's own build context, never from the project image in which the project's build
backend ran; the reports take how a cell installed from the plan, not from the record
the image holds; every RUN step of a build gets the cells' memory limit."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.celllog import CellLog
from orchestrator.config import load_config
from orchestrator.dockerfile import cell_context, cell_dockerfile, project_dockerfile
from orchestrator.engine.dockerapi import Streams, Translator
from orchestrator.engine.dockerbuild import BuildRequest, container_limits, stream_build
from orchestrator.engine.records import packages_of
from orchestrator.errors import BuildFailed
from orchestrator.jobs import InstallStep
from orchestrator.plan import make_plan
from orchestrator.settings import Limits, ProjectKind, Resolution
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]
IMAGE = "sha256:" + "1" * 64
PYPROJECT = """
    [build-system]
    requires = ["setuptools>=69"]
    build-backend = "setuptools.build_meta"
    [project]
    name = "demo"
    version = "1.0"
    [project.optional-dependencies]
    tests = ["pytest>=8"]
"""


def _plan(write: Write, install: str, extra: str = "") -> Any:
    write("pyproject.toml", PYPROJECT)
    config = load_config(write("matrix.yaml", f"""
        image: {{registry: 127.0.0.1:5000}}
        matrix: {{python: ["3.12"], variant: [slim]}}
        install: {install}
        {extra}
    """))
    return make_plan(config, Catalogue.builtin()).jobs[0].build


@pytest.mark.parametrize("kind", ["sdist", "wheel", "editable", "none"])
def test_every_installer_run_uses_the_cells_own_copy_of_the_installer(
        write: Write, kind: str) -> None:
    build = _plan(write, f"{{project: {kind}, packages: [pytest]}}")
    assert "install.py" not in project_dockerfile(build.project)
    lines = cell_dockerfile(build, IMAGE).splitlines()
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN ")]
    assert runs
    for i in runs:
        argv = json.loads(lines[i].removeprefix("RUN "))
        assert argv[:3] == ["python", "-I", "/tmp/tagmatrix-tools/install.py"]
        # right before it, from the build's own context: no step in between, where
        # the project's code (a setup.py) could have replaced it
        assert lines[i - 1] == "COPY tagmatrix/ /tmp/tagmatrix-tools/"
    for line in lines:
        if line.startswith("COPY --from="):
            assert "/tmp/tagmatrix-tools" not in line
    assert cell_context(build)["tagmatrix/install.py"].startswith(b'"""Runs INSIDE')


def test_a_long_requirement_list_stays_out_of_the_dockerfile(write: Write) -> None:
    many = ", ".join(f'"package-number-{i}>=1.0"' for i in range(3000))
    build = _plan(write, f"{{packages: [{many}]}}")
    text = cell_dockerfile(build, IMAGE)
    assert max(len(line) for line in text.splitlines()) < 200  # the engine allows 65535
    step = json.loads(cell_context(build)["tagmatrix/step-deps.json"])
    assert len(step["packages"]) == 3000


HOSTILE = {"packages": {"pytest": "8.3.0", "pip": "26.3"}, "install": {
    "resolver": "uv 0.13.9 (lowest-direct)", "resolution": "lowest-direct",
    "extras": ["evil"], "groups": ["evil"], "requirements": ["../../etc/evil"],
    "project": {"name": "demo", "requires": ['pytest>=8; extra == "tests"']}}}


def test_the_reports_take_how_a_cell_installed_from_the_plan() -> None:
    step = InstallStep(kind=ProjectKind.SDIST, extras=("tests",), groups=("test",),
                       requirements=("requirements-dev.txt",))
    packages, record = packages_of(json.dumps(HOSTILE).encode(), step)
    assert packages["pytest"] == "8.3.0"  # what only the container knows
    assert record.resolver == "pip"  # the record names another installer: no version
    assert record.resolution == "highest"
    assert record.extras == ("tests",)
    assert record.groups == ("test",)
    assert record.requirements == ("requirements-dev.txt",)  # the plan's, not the record's
    assert record.project == "demo"
    assert record.requires == ('pytest>=8; extra == "tests"',)


@pytest.mark.parametrize(("said", "shown"), [
    ("uv 0.13.9 (lowest-direct)", "uv 0.13.9 (lowest-direct)"),
    ("pip 26.3", "uv (lowest-direct)"),
    ("uv 0.13.9<script>", "uv (lowest-direct)"),
    ("", "uv (lowest-direct)"),
])
def test_only_a_version_of_the_planned_installer_is_taken_from_the_record(
        said: str, shown: str) -> None:
    step = InstallStep(kind=ProjectKind.NONE, packages=("pytest",),
                       resolution=Resolution.LOWEST_DIRECT)
    raw = json.dumps({"packages": {}, "install": {"resolver": said}}).encode()
    assert packages_of(raw, step)[1].resolver == shown


def test_a_cell_outside_the_install_flow_reports_no_install() -> None:
    packages, record = packages_of(json.dumps(HOSTILE).encode(), None)
    assert packages
    assert not record.resolver
    assert not record.extras


def test_builds_carry_the_cells_memory_limit_without_swap(write: Write) -> None:
    build = _plan(write, "{extras: [tests]}", "limits: {memory: 512m, pids: 256}")
    for limits in (build.limits, build.project.limits):
        assert limits.memory == 512 * 1024**2
        assert container_limits(limits) == {"memory": 512 * 1024**2,
                                            "memswap": 512 * 1024**2}


class _Api:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.asked: dict[str, Any] = {}

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.asked = kwargs
        return iter(self.chunks)


class _Streams:
    def __init__(self, api: _Api) -> None:
        self.api = api

    @contextlib.contextmanager
    def client(self) -> Iterator[tuple[_Api, Callable[[], None]]]:
        yield self.api, lambda: None


class _Translator:
    @contextlib.contextmanager
    def errors(self, *_: Any) -> Iterator[None]:
        yield


def _build(tmp_path: Path, chunks: list[dict[str, Any]]) -> tuple[_Api, CellLog]:
    api = _Api(chunks)
    log = CellLog(tmp_path / "cell.log", flush_interval=0.0)
    request = BuildRequest(context=cast("Any", None), dockerfile="D", tag="t:1", args={},
                           labels={}, timeout=60,
                           limits=container_limits(Limits(memory=512 * 1024**2)))
    try:
        stream_build(cast("Streams", _Streams(api)), cast("Translator", _Translator()),
                     request, log, threading.Event())
    finally:
        log.close()
    return api, log


def test_the_build_api_is_asked_for_the_limits(tmp_path: Path) -> None:
    api, _ = _build(tmp_path, [{"stream": "Step 1/1 : FROM x\n"}, {"aux": {"ID": "sha256:1"}}])
    assert api.asked["container_limits"] == {"memory": 512 * 1024**2,
                                             "memswap": 512 * 1024**2}


def test_a_step_killed_under_the_limit_says_so(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed, match=r"killed: build steps share the cells' "
                                          r"limits\.memory, 512 MiB"):
        _build(tmp_path, [{"stream": "Step 1/1 : RUN x\n"}, {
            "error": "The command '/bin/sh -c x' returned a non-zero code: 137"}])


def test_uv_reads_only_the_images_own_configuration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.incontainer import install

    user, system = tmp_path / "user" / "uv" / "uv.toml", tmp_path / "xdg" / "uv" / "uv.toml"
    for path in (user, system):
        path.parent.mkdir(parents=True)
        path.write_text("")
    monkeypatch.delenv("UV_CONFIG_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "uv.toml").write_text("")  # where uv would discover one: never chosen
    assert install.image_uv_config() == user
    user.unlink()
    assert install.image_uv_config() == system
