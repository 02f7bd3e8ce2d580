"""The install flow on the real engine, the lab registry and the lab's package index:
a library is built once into an sdist in a container, installed in every cell with
its test dependencies, and tested as installed; a cell proves its interpreter."""

from __future__ import annotations

import io
import json
import re
import textwrap
import urllib.request
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import REGISTRY, Outcome, run_project, tagmatrix
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

SETUPTOOLS = ('[build-system]\nrequires = ["setuptools>=69"]\n'
              'build-backend = "setuptools.build_meta"\n')


def lab_index_versions(name: str) -> list[str]:
    """The versions the lab's package index serves for ``name`` (what a cell's pip sees)."""
    image = f"{REGISTRY}/library/python:3.12-slim"
    client = docker.from_env()
    try:
        conf = client.containers.run(image, ["cat", "/etc/pip.conf"], remove=True).decode()
    finally:
        client.close()
    index = re.search(r"index-url\s*=\s*(\S+)", conf)
    assert index, conf
    request = urllib.request.Request(f"{index[1].rstrip('/')}/{name}/",  # noqa: S310 - http
                                     headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=60) as page:  # noqa: S310 - the lab's mirror
        html = page.read().decode()
    found = re.findall(rf"{name}-([0-9][0-9.]*)\.tar\.gz", html)
    assert found, f"the lab index serves no sdist of {name}"
    return sorted(set(found), key=lambda v: tuple(int(p) for p in v.split(".")))


def library(root: Path, *, name: str, version: str, pyproject_extra: str = "",
            tests: dict[str, str], matrix: str) -> Path:
    package = root / "src" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "{version}"\n\n'
                                         'def tagmatrix_marker():\n    return "new code"\n')
    (root / "pyproject.toml").write_text(
        SETUPTOOLS + f'[project]\nname = "{name}"\nversion = "{version}"\n' + pyproject_extra)
    (root / "tests").mkdir()
    for file, body in tests.items():
        (root / "tests" / file).write_text(textwrap.dedent(body).lstrip())
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n' + textwrap.dedent(matrix).lstrip())
    return path


def test_a_src_library_is_tested_as_installed_even_over_an_older_copy_of_itself(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    # requests depends on idna: the dependency layer installs the index's idna, at the
    # very version this project claims (as pytest pulled a released pluggy into pluggy's
    # own cells). The cell must still test this code.
    newest = lab_index_versions("idna")[-1]
    path = library(workspace.folder(), name="idna", version=newest, pyproject_extra=(
        '[project.optional-dependencies]\ntests = ["pytest>=8", "requests"]\n'), tests={
        "test_installed.py": """
            import idna

            def test_the_new_code_is_imported():
                assert idna.tagmatrix_marker() == "new code"

            def test_from_site_packages_not_the_source_tree():
                assert "site-packages" in idna.__file__
        """}, matrix=f"""
        matrix: {{python: ["{lab_minors[0]}", "{lab_minors[-1]}"], variant: [slim]}}
        install: {{extras: [tests]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
        parallel: 2
    """)
    outcome = run_project(path, client=docker_client)
    for cell in outcome.cells().values():
        assert cell["status"] == "passed", cell["reason"]
        assert cell["tests"]["passed"] == 2
        assert cell["packages"]["idna"] == newest
        assert cell["install"]["project"] == "idna"
        assert cell["install"]["resolver"].startswith("pip ")
        assert 'pytest>=8; extra == "tests"' in cell["install"]["requires"]
    logs = outcome.reports / "logs"
    project_log = (logs / "_project.linux-sdist.log").read_text()
    assert "Step 1/" in project_log  # built (or taken from the cache) once, logged once
    assert "[tagmatrix] project image sha256:" in project_log


def test_a_min_cell_installs_the_declared_floors(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    minor = next(m for m in lab_minors if m in ("3.11", "3.12"))
    path = library(workspace.folder(), name="floors", version="1.0", pyproject_extra=(
        'dependencies = ["attrs>=22.1.0"]\n[dependency-groups]\ntest = ["pytest>=8.0.0"]\n'),
        tests={"test_ok.py": "import attrs\n\ndef test_ok():\n    assert attrs\n"}, matrix=f"""
        matrix:
          python: ["{minor}"]
          variant: [slim]
          deps: [min, latest]
          include:
            - deps: min
              install: {{resolution: lowest-direct}}
        install: {{groups: [test]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
        parallel: 2
    """)
    cells = run_project(path, client=docker_client).cells()
    low, high = cells[f"{minor}-slim-min"], cells[f"{minor}-slim-latest"]
    assert low["packages"]["attrs"] == "22.1.0"
    assert low["packages"]["pytest"] == "8.0.0"
    assert low["install"]["resolver"].startswith("uv ")
    assert "lowest-direct" in low["install"]["resolver"]
    assert high["packages"]["attrs"] != "22.1.0"
    assert high["install"]["resolver"].startswith("pip ")
    assert "uv" not in low["packages"]  # the resolver stays out of the tested environment


def test_a_hard_coded_from_is_an_error_never_a_green_cell(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    oldest, newest = lab_minors[0], lab_minors[-1]
    root = workspace.folder()
    (root / "tests").mkdir()
    (root / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    (root / "Dockerfile").write_text(
        f"FROM {REGISTRY}/library/python:{oldest}-slim\nWORKDIR /usr/src/app\n"
        "RUN pip install --no-cache-dir pytest\nCOPY . .\n")
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                    f'matrix: {{python: ["{oldest}", "{newest}"], variant: [slim]}}\n'
                    "build: {dockerfile: Dockerfile}\n"
                    "test: {command: python -m pytest -q tests, timeout: 300}\n")
    validated = tagmatrix("validate", "-f", str(path))
    assert validated.code == 0
    assert "uses neither PYTHON_IMAGE nor PYTHON_TAG" in validated.err
    cells = run_project(path, client=docker_client, expect=1).cells()
    assert cells[f"{oldest}-slim"]["status"] == "passed"
    wrong = cells[f"{newest}-slim"]
    assert wrong["status"] == "error"
    assert wrong["stage"] == "results"
    assert wrong["reason"].startswith(f"the image ran Python {oldest}.")
    assert "does Dockerfile's FROM use PYTHON_IMAGE" in wrong["reason"]
    assert wrong["tests"]["passed"] == 1  # its tests ran, but they do not count


def test_a_project_that_does_not_build_fails_every_cell_with_one_build(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    (root / "setup.py").write_text(
        "raise RuntimeError('tagmatrix-test: this project cannot be built')\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                    f'matrix: {{python: {json.dumps(lab_minors[:2])}, variant: [slim]}}\n'
                    "test: {command: python -m pytest -q tests, timeout: 300}\n")
    outcome = run_project(path, client=docker_client, expect=1)
    reasons = set()
    for cell in outcome.cells().values():
        assert cell["status"] == "error"
        assert cell["stage"] == "build"
        reasons.add(cell["reason"])
    assert len(reasons) == 1  # one build, one cause, given to every cell
    (reason,) = reasons
    assert "the project's sdist did not build" in reason
    assert "RuntimeError: tagmatrix-test: this project cannot be built" in reason
    assert "logs/_project.linux-sdist.log" in reason
    logs = outcome.reports / "logs"
    assert (logs / "_project.linux-sdist.log").read_text().count("Step 1/") == 1


def test_project_wheel_refuses_a_wheel_that_is_not_pure_python(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = library(root, name="platformwheel", version="1.0", tests={
        "test_ok.py": "def test_ok():\n    pass\n"}, matrix=f"""
        matrix: {{python: {json.dumps(lab_minors[:2])}, variant: [slim]}}
        install: {{project: wheel, packages: [pytest]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
    """)
    # a platform wheel without a compiler: the usual way to tag a wheel as binary
    (root / "setup.py").write_text(
        "from setuptools import setup\nfrom setuptools.dist import Distribution\n\n"
        "class Binary(Distribution):\n    def has_ext_modules(self):\n        return True\n\n"
        "setup(distclass=Binary)\n")
    outcome = run_project(path, client=docker_client, expect=1)
    for cell in outcome.cells().values():
        assert (cell["status"], cell["stage"]) == ("error", "build")
        assert "the project's wheel is not pure Python" in cell["reason"], cell["reason"]
        assert "use install.project: sdist" in cell["reason"]


def test_auto_builds_each_cells_wheel_on_its_own_interpreter(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    # a build that depends on the interpreter (setup.py writes which one built it): one
    # wheel built once on the newest would give the oldest cell the newest's code
    root = workspace.folder()
    path = library(root, name="builtwhere", version="1.0", tests={"test_built_here.py": """
        import sys

        from builtwhere import _built

        def test_built_by_the_interpreter_that_runs_it():
            assert _built.ON == tuple(sys.version_info[:2])
    """}, matrix=f"""
        matrix: {{python: ["{lab_minors[0]}", "{lab_minors[-1]}"], variant: [slim]}}
        install: {{packages: [pytest]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
        parallel: 2
    """)
    (root / "setup.py").write_text(textwrap.dedent("""
        import sys
        from pathlib import Path

        from setuptools import setup
        from setuptools.command.build_py import build_py


        class Stamped(build_py):
            def run(self):
                super().run()
                target = Path(self.build_lib) / "builtwhere" / "_built.py"
                target.write_text(f"ON = {tuple(sys.version_info[:2])!r}\\n")


        setup(cmdclass={"build_py": Stamped})
    """).lstrip())
    outcome = run_project(path, client=docker_client)
    for cell in outcome.cells().values():
        assert cell["status"] == "passed", cell["reason"]
        assert cell["tests"]["passed"] == 1
        assert cell["install"]["artifact"] == "builtwhere-1.0.tar.gz"  # results.json says it


def test_a_failed_dependency_install_quotes_the_resolver(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    path = library(workspace.folder(), name="needsmissing", version="1.0", tests={
        "test_ok.py": "def test_ok():\n    pass\n"}, matrix=f"""
        matrix: {{python: ["{lab_minors[0]}"], variant: [slim]}}
        install: {{packages: ["tagmatrix-no-such-distribution-anywhere"]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
    """)
    (cell,) = run_project(path, client=docker_client, expect=1).cells().values()
    assert (cell["status"], cell["stage"]) == ("error", "build")
    assert ("No matching distribution found for tagmatrix-no-such-distribution-anywhere"
            in cell["reason"])
    assert f"logs/{lab_minors[0]}-slim.log" in cell["reason"]


def test_a_cell_whose_install_fails_first_does_not_hold_up_the_others(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    """One slot; the cell first in line fails to install: the rest still run (this hung
    for good before its place in the slot queue was given up)."""
    first, *rest = lab_minors[:3]
    listed = ", ".join(f'"{p}"' for p in (first, *rest))
    path = library(workspace.folder(), name="firstfails", version="1.0", tests={
        "test_ok.py": "def test_ok():\n    pass\n"}, matrix=f"""
        matrix:
          python: [{listed}]
          variant: [slim]
          include:
            - {{python: "{first}", variant: slim, install: {{packages: ["pytest<0"]}}}}
        install: {{packages: [pytest]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
        parallel: 1
    """)
    cells = run_project(path, client=docker_client, expect=1).cells()
    assert (cells[f"{first}-slim"]["status"], cells[f"{first}-slim"]["stage"]) == \
        ("error", "build")
    assert [cells[f"{p}-slim"]["status"] for p in rest] == ["passed"] * len(rest)


def test_a_real_library_gives_the_same_per_test_counts_as_by_hand(
        tmp_path: Path, workspace: Workspace, lab_minors: list[str]) -> None:
    """pluggy's own suite (its sdist from the package index, cached in lab/.cache):
    a matrix of a few lines (install.groups) through tagmatrix, and the same tests run
    by hand in the same images (pip install --group testing . && pytest), read by
    junitparser: equal counts in every cell. benchmarks/libraries.py does it for more."""
    from benchmarks.libraries import LIBRARIES, by_hand, fetch_sdist, through_tagmatrix, unpack

    library = LIBRARIES["pluggy"]
    # renamed: tagmatrix names the images after the folder (pluggy-1.7.0 is everyone's)
    project = workspace.adopt(unpack(fetch_sdist(library.name, library.version),
                                     workspace.folder("src")))
    pythons = [lab_minors[0], lab_minors[-1]]
    ours, _, code = through_tagmatrix(library, project, pythons, tmp_path / "reports")
    assert code == 0
    for python in pythons:
        counts = ours[f"{python}-slim"]
        assert counts["passed"] > 100
        assert counts == by_hand(library, project, python, tmp_path / "hand" / python)


def test_an_unchanged_image_is_used_again_and_a_changed_base_or_project_rebuilds(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    newest = lab_minors[-1]
    repository = workspace.repository("reusetest/python")
    base = f"{REGISTRY}/{repository}:{newest}-slim"
    assert docker_client.images.get(f"{REGISTRY}/library/python:{newest}-slim").tag(base)
    root = workspace.folder()
    path = library(root, name="reuselib", version="1.0", pyproject_extra=(
        '[project.optional-dependencies]\ntests = ["pytest>=8"]\n'), tests={"test_r.py": """
            import os

            import reuselib

            def test_code():
                assert reuselib.tagmatrix_marker() == "new code"

            def test_base():
                assert not os.path.exists("/base-changed")
        """}, matrix=f"""
        matrix: {{python: ["{newest}"], variant: [slim]}}
        install: {{extras: [tests]}}
        test: {{command: python -m pytest -q tests, timeout: 300}}
        """)
    path.write_text(path.read_text().replace(
        f'registry: "{REGISTRY}"', f'registry: "{REGISTRY}", repository: {repository}'))
    reports = root / "reports"
    cell = f"{newest}-slim"
    used = "used as it is: built before from the same inputs"

    def logs() -> tuple[str, str]:
        return ((reports / "logs" / "_project.linux-sdist.log").read_text(),
                (reports / "logs" / f"{cell}.log").read_text())

    def failing(outcome: Outcome) -> list[str]:
        return sorted(t.rpartition("::")[2] for t in outcome.cells()[cell]["failing_tests"])

    first = run_project(path, client=docker_client)
    assert all(used not in log for log in logs())  # nothing to use yet: built
    again = run_project(path, client=docker_client)
    assert all(used in log for log in logs())  # nothing changed: no build at all
    assert again.cells()[cell]["built_image"] == first.cells()[cell]["built_image"]

    # the base image changes under its tag (a new release of python:X-slim, pulled)
    docker_client.images.build(fileobj=io.BytesIO(
        f"FROM {base}\nRUN echo new > /base-changed\n".encode()), tag=base, rm=True)
    based = run_project(path, client=docker_client, expect=1)
    assert all(used not in log for log in logs())  # both rebuilt on the new base
    assert failing(based) == ["test_base"]  # and the cell ran on it

    # the library's code changes
    module = root / "src" / "reuselib" / "__init__.py"
    module.write_text(module.read_text().replace('"new code"', '"changed"'))
    changed = run_project(path, client=docker_client, expect=1)
    project_log, cell_log = logs()
    assert used not in project_log
    assert used not in cell_log
    assert failing(changed) == ["test_base", "test_code"]  # the new code was installed
