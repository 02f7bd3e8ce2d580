"""`tagmatrix run` end to end on the real engine and the lab registry."""

from __future__ import annotations

import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import pytest

from tests.conftest import validate_against_xsd
from tests.integration.conftest import REGISTRY, Outcome

pytestmark = pytest.mark.docker

VERSION_TESTS = {
    "test_version.py": """
        import sys

        def test_always():
            assert 1 + 1 == 2

        def test_not_on_newest():
            # fails on purpose on the newest lab interpreter (see the test below)
            newest = tuple(int(p) for p in "{newest}".split("."))
            assert sys.version_info[:2] < newest, f"running on {{sys.version_info[:2]}}"
    """,
}


def matrix(pythons: list[str], *, parallel: int = 2, extra: str = "") -> str:
    listed = ", ".join(f'"{p}"' for p in pythons)
    return f"""
        project: .
        image: {{registry: "{REGISTRY}"}}
        matrix:
          python: [{listed}]
          variant: [slim]
        test:
          command: python -m pytest -q tests
          timeout: 120
        parallel: {parallel}
        {extra}
    """


def parse_time(text: str) -> datetime:
    # the engine's RFC 3339 with nanoseconds: keep microseconds
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


@pytest.mark.usefixtures("no_leftovers")
def test_passing_and_failing_cells(lab_minors: list[str], project: Callable[..., Path],
                                   tagmatrix: Callable[..., Outcome]) -> None:
    oldest, newest = lab_minors[0], lab_minors[-1]
    tests = {k: v.replace("{newest}", newest) for k, v in VERSION_TESTS.items()}
    root = project(matrix([oldest, newest]), tests)
    outcome = tagmatrix("run", "-f", str(root / "matrix.yaml"))
    assert outcome.code == 1, outcome.err
    cells = outcome.cells()
    passing, failing = cells[f"{oldest}-slim"], cells[f"{newest}-slim"]
    assert passing["status"] == "passed" and passing["exit_code"] == 0
    assert passing["tests"] == {"total": 2, "passed": 2, "failed": 0, "errors": 0, "skipped": 0}
    assert passing["interpreter"]["version"].startswith(oldest + ".")
    assert passing["interpreter"]["executable"] == "/usr/local/bin/python"
    assert failing["status"] == "failed" and failing["exit_code"] == 1
    assert failing["tests"]["failed"] == 1
    # the failing test is in junit.xml, under its cell, with its message
    xml = (outcome.reports / "junit.xml").read_bytes()
    root_el = ET.fromstring(xml)  # noqa: S314 - our own output
    case = root_el.find(f"testsuite[@name='{newest}-slim']/testcase[@name='test_not_on_newest']")
    assert case is not None
    assert case.get("classname") == f"{newest}-slim.tests.test_version"
    failure = case.find("failure")
    assert failure is not None and "running on" in (failure.get("message") or "")
    assert root_el.find(f"testsuite[@name='{oldest}-slim']/testcase[@name='test_not_on_newest']"
                        "/failure") is None
    validate_against_xsd(xml)
    # logs are on disk: the build section, the run section, pytest's own output
    log = (outcome.reports / "logs" / f"{newest}-slim.log").read_text()
    assert "==> " in log and "Step 1/" in log and "1 failed, 1 passed" in log
    assert (outcome.reports / "cells" / f"{newest}-slim.xml").is_file()
    assert (outcome.reports / "summary.md").read_text().count("slim") >= 2
    assert "Failing tests" in outcome.out and "test_not_on_newest" in outcome.out


@pytest.mark.usefixtures("no_leftovers")
def test_tag_missing_from_registry_is_an_error_and_others_still_run(
        lab_minors: list[str], project: Callable[..., Path],
        tagmatrix: Callable[..., Outcome]) -> None:
    # 3.14 is published upstream (the catalogue plans it) but the lab has no 3.14 image
    assert "3.14" not in lab_minors
    root = project(matrix([lab_minors[0], "3.14"]), {"test_ok.py": "def test_ok():\n    pass\n"})
    outcome = tagmatrix("run", "-f", str(root / "matrix.yaml"))
    assert outcome.code == 1
    cells = outcome.cells()
    assert cells[f"{lab_minors[0]}-slim"]["status"] == "passed"
    missing = cells["3.14-slim"]
    assert missing["status"] == "error"
    assert missing["stage"] == "pull"
    assert "not found" in missing["reason"]
    suite = ET.fromstring((outcome.reports / "junit.xml").read_bytes())  # noqa: S314
    error = suite.find("testsuite[@name='3.14-slim']/testcase[@name='build']/error")
    assert error is not None and "not found" in (error.get("message") or "")


@pytest.mark.usefixtures("no_leftovers")
def test_two_cells_really_overlap_with_parallel_2(lab_minors: list[str],
                                                   project: Callable[..., Path],
                                                   tagmatrix: Callable[..., Outcome]) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"}
    pythons = lab_minors[:2]

    def intervals(parallel: int) -> list[tuple[datetime, datetime]]:
        root = project(matrix(pythons, parallel=parallel), tests)
        outcome = tagmatrix("run", "-f", str(root / "matrix.yaml"),
                            reports=root / f"reports-{parallel}")
        assert outcome.code == 0, outcome.err
        return [(parse_time(c["started_at"]), parse_time(c["finished_at"]))
                for c in outcome.cells().values()]

    # The engine's own start/finish times of the two containers.
    (a_start, a_end), (b_start, b_end) = intervals(2)
    assert max(a_start, b_start) < min(a_end, b_end), "the containers did not overlap"
    # ...and the same measurement does show no overlap when parallel is 1
    (a_start, a_end), (b_start, b_end) = intervals(1)
    assert max(a_start, b_start) >= min(a_end, b_end)


@pytest.mark.usefixtures("no_leftovers")
def test_base_image_is_pulled_from_the_registry_with_its_digest(
        docker_client: docker.DockerClient, lab_minors: list[str],
        project: Callable[..., Path], tagmatrix: Callable[..., Outcome]) -> None:
    minor = lab_minors[0]
    reference = f"{REGISTRY}/library/python:{minor}-slim"
    try:
        docker_client.images.remove(reference)  # untag only: force a real pull
    except docker.errors.ImageNotFound:
        pass
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/library/python/manifests/{minor}-slim", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local lab
        digest = response.headers["Docker-Content-Digest"]
    root = project(matrix([minor]), {"test_ok.py": "def test_ok():\n    pass\n"})
    outcome = tagmatrix("run", "-f", str(root / "matrix.yaml"))
    assert outcome.code == 0
    cell = outcome.cells()[f"{minor}-slim"]
    assert cell["image_digest"] == digest
    log = (outcome.reports / "logs" / f"{minor}-slim.log").read_text()
    assert f"pulling {reference}" in log


def test_config_error_exits_2_without_traceback(tmp_path: Path,
                                                tagmatrix: Callable[..., Outcome]) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text('matrix:\n  python: [3.10]\n')
    outcome = tagmatrix("run", "-f", str(path))
    assert outcome.code == 2
    assert f"{path}:2:" in outcome.err
    assert "Traceback" not in outcome.err
