"""Planning: jobs, shared builds, skips with reasons, pytest JUnit plumbing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.matrix import Selector
from orchestrator.plan import (
    PLANNED,
    SKIPPED,
    builtin_template,
    explicit_junit,
    looks_like_pytest,
    make_plan,
)
from orchestrator.routing import Target
from orchestrator.settings import EngineType
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]


def test_builtin_template_is_the_canonical_layer_order() -> None:
    text = builtin_template("reg/library/python:3.12-slim", has_requirements=True)
    assert text.splitlines() == [
        "FROM reg/library/python:3.12-slim", "WORKDIR /usr/src/app",
        "COPY requirements.txt ./", "RUN pip install --no-cache-dir -r requirements.txt",
        "COPY . ."]
    assert "requirements" not in builtin_template("x", has_requirements=False)


def test_pytest_detection_and_explicit_junit() -> None:
    assert looks_like_pytest(["python", "-m", "pytest", "-q"])
    assert looks_like_pytest(["pytest"])
    assert looks_like_pytest(["/usr/local/bin/pytest", "tests"])
    assert looks_like_pytest(["sh", "-c", "pip list && pytest -x"])
    assert not looks_like_pytest(["python", "-m", "unittest"])
    assert not looks_like_pytest(["python", "run_pytest_like.py"])
    assert explicit_junit(["pytest", "--junitxml=out/j.xml"]) == "out/j.xml"
    assert explicit_junit(["pytest", "--junit-xml", "j.xml"]) == "j.xml"
    assert explicit_junit(["pytest"]) is None


def test_jobs_of_a_matrix(write: Write) -> None:
    write("requirements.txt", "pytest\n")
    config = load_config(write("matrix.yaml", """
        image: {registry: 127.0.0.1:5000}
        matrix:
          python: ["3.10", "3.13"]
          variant: [slim, windowsservercore]
        allow_failure: [python=3.13]
        test: {command: python -m pytest -q, timeout: 30}
    """))
    plan = make_plan(config, Catalogue.builtin())
    by_id = {job.id: job for job in plan.jobs}
    assert list(by_id) == ["3.10-slim", "3.10-windowsservercore", "3.13-slim",
                           "3.13-windowsservercore"]
    assert by_id["3.10-windowsservercore"].state == SKIPPED
    assert "no Windows images" in by_id["3.10-windowsservercore"].reason
    assert by_id["3.13-windowsservercore"].state == SKIPPED
    assert by_id["3.13-windowsservercore"].reason == "no Windows engine configured"
    job = by_id["3.10-slim"]
    assert job.state == PLANNED
    assert job.base_image == "127.0.0.1:5000/library/python:3.10-slim"
    assert job.gating
    assert not by_id["3.13-slim"].gating
    assert job.pytest_junit
    assert job.junit_path == "/tmp/tagmatrix/junit.xml"
    assert job.timeout == 30.0
    assert job.build is not None
    assert job.build.template is not None
    assert "FROM 127.0.0.1:5000/library/python:3.10-slim" in job.build.template
    env = {e.name: e.value for e in job.env}
    assert env["MATRIX_PYTHON"] == "3.10"
    assert env["MATRIX_VARIANT"] == "slim"
    windows = make_plan(config, Catalogue.builtin(), targets=[
        Target(name="local", type=EngineType.DOCKER, oses=frozenset({"linux"})),
        Target(name="win", type=EngineType.DOCKER, oses=frozenset({"windows"}))])
    assert [j.state for j in windows.jobs] == [PLANNED, SKIPPED, PLANNED, PLANNED]


def test_cells_differing_only_in_env_or_command_share_one_build(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          variant: [slim]
          mode: [fast, slow]
          include:
            - {mode: slow, command: python -m pytest --runslow, env: {SLOW: "1"}}
    """))
    jobs = make_plan(config, Catalogue.builtin()).jobs
    assert [j.id for j in jobs] == ["3.12-slim-fast", "3.12-slim-slow"]
    assert jobs[0].build is not None
    assert jobs[1].build is not None
    assert jobs[0].build.key == jobs[1].build.key
    assert jobs[1].command == ("python", "-m", "pytest", "--runslow")
    assert ("SLOW", "1") in [(e.name, e.value) for e in jobs[1].env]
    assert {"MATRIX_MODE": "slow"}.items() <= {e.name: e.value for e in jobs[1].env}.items()


def test_dockerfile_gets_only_the_args_it_declares(write: Write) -> None:
    write("Dockerfile", "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nARG DEPS\n")
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          deps: [min, latest]
          other: [a, b]
        build: {dockerfile: Dockerfile}
    """))
    jobs = make_plan(config, Catalogue.builtin()).jobs
    builds = [j.build for j in jobs if j.build]
    assert dict(builds[0].args) == {"PYTHON_IMAGE": "docker.io/library/python:3.12",
                                    "DEPS": "min"}
    # "other" is not declared: cells that differ only there share a build
    assert len({b.key for b in builds}) == 2


def test_include_overrides_reach_the_job(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12", "3.13"]
          include:
            - {python: "3.13", timeout: 1200, env: {SLOW: "1"}, command: pytest --runslow}
    """))
    first, second = make_plan(config, Catalogue.builtin()).jobs
    assert (first.timeout, first.command) == (600.0, ("python", "-m", "pytest"))
    assert (second.timeout, second.command) == (1200.0, ("pytest", "--runslow"))
    assert ("SLOW", "1") in [(e.name, e.value) for e in second.env]


def test_only_selects_cells(write: Write) -> None:
    config = load_config(write("matrix.yaml", 'matrix: {python: ["3.12", "3.13"]}\n'))
    plan = make_plan(config, Catalogue.builtin(), only=(Selector.parse("python=3.13"),))
    assert [j.id for j in plan.jobs] == ["3.13"]


def test_unchecked_repository_plans_any_well_formed_tag(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        image: {repository: myorg/python}
        matrix: {python: ["3.16"], variant: [slim]}
    """))
    job = make_plan(config, Catalogue.builtin()).jobs[0]
    assert job.state == PLANNED
    assert job.base_image == "docker.io/myorg/python:3.16-slim"


def test_a_project_folder_name_becomes_a_valid_bounded_image_name() -> None:
    from orchestrator.names import repository_problem
    from orchestrator.plan import MAX_SLUG, _slug

    assert _slug("My Project") == "my-project"
    assert _slug("a..b_.c--d__e") == "a-b-c--d__e"  # '..' and '_.' are no separators
    assert _slug("...") == "project"
    long_a, long_b = "x" * 250 + "a", "x" * 250 + "b"
    assert len(_slug(long_a)) == MAX_SLUG
    assert _slug(long_a) != _slug(long_b)  # cut, yet apart
    for name in ("My Project", "a..b_.c--d__e", long_a, "ü-ñ.__x", "-_.lead"):
        assert repository_problem(f"tagmatrix/{_slug(name)}-project") is None, name


def test_a_cell_outside_the_projects_requires_python_is_skipped_with_the_reason(
        write: Write) -> None:
    write("pyproject.toml", '[project]\nname = "rp"\nversion = "1"\n'
                            'requires-python = ">=3.11, !=3.12.*"\n')
    path = write("matrix.yaml", 'matrix: {python: ["3.10", "3.11", "3.12", "3.13.1"]}\n')
    jobs = {j.id: j for j in make_plan(load_config(path), Catalogue.builtin()).jobs}
    assert {i: j.state for i, j in jobs.items()} == {
        "3.10": SKIPPED, "3.11": PLANNED, "3.12": SKIPPED, "3.13.1": PLANNED}
    assert jobs["3.10"].reason.startswith("the project requires Python >=3.11, !=3.12.*")
    # not installed (an application, or install.project: none): nothing to refuse
    write("m2.yaml", 'matrix: {python: ["3.10"]}\ninstall: {project: none, '
                     'packages: [pytest]}\n')
    [job] = make_plan(load_config(path.with_name("m2.yaml")),
                      Catalogue.builtin()).jobs
    assert job.state is PLANNED
