"""The install flow as planned: which cells build a project image, what each cell
installs, how include entries change it per cell, and the Dockerfiles it renders."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.dockerfile import cell_context, cell_dockerfile, project_dockerfile
from orchestrator.errors import ConfigError, Stage
from orchestrator.plan import Job, make_plan
from orchestrator.results import Status
from orchestrator.settings import ProjectKind, Resolution
from orchestrator.tags import Catalogue
from orchestrator.verdict import job_result

Write = Callable[[str, str], Path]

LIBRARY = """
    [build-system]
    requires = ["setuptools>=69"]
    build-backend = "setuptools.build_meta"
    [project]
    name = "demo"
    version = "1.0"
    dependencies = ["attrs>=22.1"]
    [project.optional-dependencies]
    tests = ["pytest>=8"]
    [dependency-groups]
    test = ["hypothesis>=6"]
"""


def test_a_library_builds_one_project_image_from_the_newest_interpreter(write: Write) -> None:
    write("pyproject.toml", LIBRARY)
    write("requirements-test.txt", "-r requirements-base.txt\n")
    write("requirements-base.txt", "pretend\n")
    config = load_config(write("matrix.yaml", """
        image: {registry: 127.0.0.1:5000}
        matrix:
          python: ["3.10", "3.12", "3.15-rc"]
          variant: [slim]
        install:
          extras: [tests]
          groups: [test]
          requirements: [requirements-test.txt]
          packages: ["pytest-randomly>=3"]
    """))
    jobs = make_plan(config, Catalogue.builtin()).jobs
    builds = [j.build for j in jobs]
    assert all(b is not None and b.install is not None and b.project is not None
               for b in builds)
    projects = {b.project for b in builds if b}
    assert len(projects) == 1  # built once, shared
    project = projects.pop()
    assert project is not None
    assert project.kind is ProjectKind.SDIST
    # the newest stable interpreter builds it, not the pre-release
    assert project.base_image == "127.0.0.1:5000/library/python:3.12-slim"
    assert project.requirements == ("requirements-base.txt", "requirements-test.txt")
    step = builds[0].install if builds[0] else None
    assert step is not None
    assert step.extras == ("tests",)
    assert step.requirements == ("requirements-test.txt",)
    assert step.packages == ("pytest-randomly>=3", "hypothesis>=6")  # then the groups
    assert step.resolution is Resolution.HIGHEST
    assert builds[0] is not None
    assert builds[1] is not None
    assert builds[0].key != builds[1].key  # one build per interpreter


def min_and_latest(write: Write, install: str) -> tuple[Job, ...]:
    """The jobs of a library's matrix of a min cell (lowest-direct) and a latest cell,
    with ``install`` as the top-level install: section (a flow mapping)."""
    write("pyproject.toml", LIBRARY)
    config = load_config(write("matrix.yaml", f"""
        matrix:
          python: ["3.12"]
          deps: [min, latest]
          include:
            - deps: min
              install: {{resolution: lowest-direct}}
        install: {install}
    """))
    return make_plan(config, Catalogue.builtin()).jobs


def test_include_entries_change_the_install_per_cell(write: Write) -> None:
    low, high = (j.build.install if j.build else None
                 for j in min_and_latest(write, "{extras: [tests]}"))
    assert low is not None
    assert high is not None
    assert low.resolution is Resolution.LOWEST_DIRECT
    assert high.resolution is Resolution.HIGHEST
    assert low.extras == high.extras == ("tests",)


def test_a_cell_whose_install_fails_still_reports_how_it_was_to_install(
        write: Write) -> None:
    # an error cell's reports (results.json, index.html) show the planned install; the
    # resolver's version and the project's requirements only come from a built image
    write("requirements-test.txt", "pretend\n")
    jobs = min_and_latest(
        write, "{extras: [tests], groups: [test], requirements: [requirements-test.txt]}")
    low, high = (job_result(job, Status.ERROR, "build failed: installing the test "
                            "dependencies failed", Stage.BUILD).install for job in jobs)
    assert high.resolver == "pip"
    assert low.resolver == "uv (lowest-direct)"
    assert (high.extras, high.groups, high.requirements) == (
        ("tests",), ("test",), ("requirements-test.txt",))
    assert high.project == ""  # the record's: never guessed from the plan


def test_an_application_keeps_the_template(write: Write) -> None:
    write("requirements.txt", "pytest\n")
    config = load_config(write("matrix.yaml", 'matrix: {python: ["3.12"]}\n'))
    build = make_plan(config, Catalogue.builtin()).jobs[0].build
    assert build is not None
    assert build.install is None
    assert build.template is not None
    assert "COPY requirements.txt ./" in build.template


def test_an_application_with_install_settings_uses_the_install_flow(write: Write) -> None:
    write("requirements-test.txt", "pytest\n")
    config = load_config(write("matrix.yaml", """
        matrix: {python: ["3.12"]}
        install: {requirements: [requirements-test.txt]}
    """))
    build = make_plan(config, Catalogue.builtin()).jobs[0].build
    assert build is not None
    assert build.install is not None
    assert build.install.kind is ProjectKind.NONE
    assert not build.install.stub


def test_rendered_dockerfiles_copy_from_the_project_image_by_id(write: Write) -> None:
    write("pyproject.toml", LIBRARY)
    config = load_config(write("matrix.yaml", """
        image: {registry: 127.0.0.1:5000}
        matrix: {python: ["3.12"], variant: [slim]}
        install: {extras: [tests], project: wheel}
    """))
    build = make_plan(config, Catalogue.builtin()).jobs[0].build
    assert build is not None
    assert build.project is not None
    text = project_dockerfile(build.project)
    assert text.splitlines()[0] == "FROM 127.0.0.1:5000/library/python:3.12-slim"
    assert "COPY project/ /tagmatrix/src/" in text
    run = json.loads(text.splitlines()[-1].removeprefix("RUN "))
    assert run[:3] == ["python", "-I", "/tagmatrix/artifact.py"]
    assert json.loads(run[3])["kind"] == "wheel"
    assert "install.py" not in text  # the project image never holds tagmatrix's installer
    image = "sha256:" + "0" * 64
    cell = cell_dockerfile(build, image).splitlines()
    assert cell[2] == f"COPY --from={image} /tagmatrix/deps/ /tmp/tagmatrix-install/"
    assert cell[3] == "COPY tagmatrix/ /tmp/tagmatrix-tools/"  # the cell's own context
    assert json.loads(cell[4].removeprefix("RUN ")) == [
        "python", "-I", "/tmp/tagmatrix-tools/install.py", "deps"]
    files = cell_context(build)
    assert sorted(files) == ["tagmatrix/install.py", "tagmatrix/step-deps.json",
                             "tagmatrix/step-project.json"]
    assert json.loads(files["tagmatrix/step-deps.json"]) == {
        "data": "/tmp/tagmatrix-install", "extras": ["tests"], "groups": [], "packages": [],
        "requirements": [], "resolution": "highest", "stub": True}
    # dependencies first (cached while only code changes), then the project, then files
    assert [line.split()[0] for line in cell] == ["FROM", "WORKDIR", "COPY", "COPY", "RUN",
                                                 "COPY", "COPY", "RUN", "COPY"]


@pytest.mark.parametrize(("section", "message"), [
    ("install: {groups: [tets]}", "did you mean 'test'"),
    ("install: {extras: [test]}", "did you mean 'tests'"),
    ("install: {requirements: [nope.txt]}", "nope.txt does not exist"),
    ("install: {packages: ['pytest >=> 8']}", "not a requirement"),
    ("install: {resolution: lowest}", "one of 'highest', 'lowest-direct'"),
])
def test_bad_install_settings_name_their_line(write: Write, section: str, message: str) -> None:
    write("pyproject.toml", LIBRARY)
    path = write("matrix.yaml", 'matrix: {python: ["3.12"]}\n' + section + "\n")
    with pytest.raises(ConfigError, match=message) as refused:
        load_config(path)
    assert f"{path}:2:" in str(refused.value)


def test_install_with_a_custom_dockerfile_is_refused(write: Write) -> None:
    write("Dockerfile", "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\n")
    with pytest.raises(ConfigError, match="applies to the built-in template"):
        load_config(write("matrix.yaml", """
            matrix: {python: ["3.12"]}
            build: {dockerfile: Dockerfile}
            install: {packages: [pytest]}
        """))


def test_a_failed_install_quotes_the_installers_words_not_the_backends_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.incontainer import install

    uv_like = ("print('Resolved 12 packages'); print('error: Failed to build `pyyaml==6.0`'); "
               "print('  Caused by: The build backend returned an error'); "
               "print('Traceback (most recent call last):'); "
               "print(\"AttributeError: 'build_ext' object has no attribute 'cython_sources'\"); "
               "raise SystemExit(1)")
    with pytest.raises(SystemExit):
        install.run([sys.executable, "-c", uv_like], "dependencies")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "tagmatrix: error: dependencies failed: error: Failed to build `pyyaml==6.0`"


def test_a_missing_dependency_is_said_to_come_from_the_project_not_the_helper(
        capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.incontainer import install

    pip_like = ("print('ERROR: No matching distribution found for no-such-package "
                "(from tagmatrix-project-deps[tests,docs])'); raise SystemExit(1)")
    with pytest.raises(SystemExit):
        install.run([sys.executable, "-c", pip_like], "installing the test dependencies")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("tagmatrix: error: installing the test dependencies failed: ERROR: No "
                    "matching distribution found for no-such-package (from the project's "
                    "requirements with extras tests,docs)")
