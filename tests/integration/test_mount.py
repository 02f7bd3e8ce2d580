"""build.mode: mount: the checkout bind-mounted into the official image, setup first."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.integration.conftest import lab_matrix, make_project, run_matrix, run_project
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

TESTS = {"test_here.py": """
    import os
    import pytest

    def test_runs_in_the_mounted_checkout():
        assert os.getcwd() == "/usr/src/app"
        assert os.path.isfile("requirements.txt")

    def test_pytest_came_from_setup():
        assert pytest.__version__
"""}


def _files(root: Path) -> set[str]:
    # tagmatrix's own output: the reports, and the run history beside matrix.yaml
    # (.tagmatrix/, which keeps itself out of git with its own .gitignore)
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if "reports" not in p.parts and ".tagmatrix" not in p.parts}


def test_mount_mode_runs_setup_then_tests_and_leaves_the_checkout_clean(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2], extra="""
        build:
          mode: mount
          setup: pip install -q -r requirements.txt
    """), TESTS)
    before = _files(root)
    outcome = run_project(path, client=docker_client)
    for cell in outcome.cells().values():
        assert cell["status"] == "passed"
        assert cell["tests"]["passed"] == 2
        assert cell["built_image"].endswith(f"{cell['python']}-slim")  # the base, no build
    # no root-owned __pycache__ or .pytest_cache left in the user's checkout
    assert _files(root) == before
    log = (outcome.reports / "logs" / f"{lab_minors[0]}-slim.log").read_text()
    assert "[tagmatrix] setup: pip install -q -r requirements.txt" in log
    assert "Step 1/" not in log


def test_failing_setup_is_an_error_not_a_test_failure(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], extra="""
        build:
          mode: mount
          setup: pip install -q no-such-package-anywhere
    """), TESTS, client=docker_client, expect=1)
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "error"
    assert "setup command failed" in cell["reason"]
