"""The warnings plugin travels in TAGMATRIX_JOB, the bootstrap installs it, pytest loads it.

The bootstrap and a real pytest run on this machine's interpreter in a scratch folder
(the container's /tmp/tagmatrix): the same code path as in a container, without Docker.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from orchestrator.engine.bootstrap import BOOTSTRAP, FRAME_BEGIN, container_env
from orchestrator.engine.frames import FrameCatcher
from orchestrator.jobs import PLANNED, Job
from orchestrator.junit_in import parse_junit
from orchestrator.matrix import Cell
from orchestrator.warnings_ledger import read_cell

PROJECT = {"tests/test_w.py": """
    import warnings

    def test_warns():
        warnings.warn("old API", DeprecationWarning)

    def test_quiet():
        pass
"""}


def _job(folder: Path, command: list[str], *, pytest_junit: bool = True) -> Job:
    return Job(cell=Cell(id="3.12-slim", python="3.12", variant="slim"), state=PLANNED,
               base_image="python:3.12-slim", build=None, command=tuple(command),
               junit_path=f"{folder}/junit.xml" if pytest_junit else None,
               pytest_junit=pytest_junit, timeout=60)


def _run(job: Job, folder: Path, project: Path, *, frame: bool = False
         ) -> subprocess.CompletedProcess[bytes]:
    env = container_env(job, frame=frame)
    job_doc = json.loads(env["TAGMATRIX_JOB"])
    job_doc["dir"] = str(folder)  # the container's folder, here a scratch one
    env["TAGMATRIX_JOB"] = json.dumps(job_doc)
    return subprocess.run([sys.executable, "-S", "-c", BOOTSTRAP], cwd=project,
                          env={**os.environ, **env, "PYTHONPATH": "/nonexistent"},
                          capture_output=True, check=False, timeout=120)


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "app"
    for name, body in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return project


def test_pytest_cells_ship_the_plugin_and_others_do_not(tmp_path: Path) -> None:
    pytest_env = container_env(_job(tmp_path, ["python", "-m", "pytest"]))
    assert "-p tagmatrix_warnings" in pytest_env["PYTEST_ADDOPTS"]
    plugin = json.loads(pytest_env["TAGMATRIX_JOB"])["plugin"]
    assert plugin["name"] == "tagmatrix_warnings"
    assert "def pytest_warning_recorded" in plugin["source"]
    other = container_env(_job(tmp_path, ["python", "-m", "unittest"], pytest_junit=False))
    assert "PYTEST_ADDOPTS" not in other
    assert json.loads(other["TAGMATRIX_JOB"])["plugin"] is None


def test_the_bootstrap_installs_the_plugin_and_pytest_writes_the_ledger(tmp_path: Path) -> None:
    folder, project = tmp_path / "tagmatrix", _project(tmp_path)
    done = _run(_job(folder, [sys.executable, "-m", "pytest", "-q", "tests"]), folder, project)
    assert done.returncode == 0, done.stdout.decode()[-2000:]
    assert (folder / "plugins" / "tagmatrix_warnings.py").is_file()
    warnings, dropped = read_cell((folder / "warnings.json").read_bytes(), "3.12-slim")
    assert warnings is not None
    assert dropped == 0
    [record] = warnings
    assert (record.category, record.message, record.filename, record.tests) == \
        ("DeprecationWarning", "old API", "tests/test_w.py", ("tests.test_w::test_warns",))
    # the JUnit plumbing still works beside it, and names the test the same way
    junit = parse_junit((folder / "junit.xml").read_bytes())
    assert record.tests[0] in {case.key for case in junit}
    assert b"/nonexistent" not in (folder / "warnings.json").read_bytes()


def test_the_frame_carries_the_ledger(tmp_path: Path) -> None:
    folder, project = tmp_path / "tagmatrix", _project(tmp_path)
    job = _job(folder, [sys.executable, "-m", "pytest", "-q", "tests"])
    done = _run(job, folder, project, frame=True)
    assert done.returncode == 0
    assert FRAME_BEGIN.encode() in done.stdout
    catcher = FrameCatcher(96 * 1024 * 1024)
    catcher.feed(done.stdout)
    frame = catcher.frame()
    assert frame.warnings == (folder / "warnings.json").read_bytes()
    assert frame.junit is not None


def test_a_hostile_frame_ledger_is_refused_not_trusted() -> None:
    catcher = FrameCatcher(1024 * 1024)
    payload = {"interpreter": {}, "exit_code": 0, "junit": None,
               "warnings": base64.b64encode(b"[" * 50_000).decode()}
    text = base64.b64encode(json.dumps(payload).encode()).decode()
    catcher.feed(f"\n{FRAME_BEGIN}\n{text}\n@@tagmatrix-frame-end@@\n".encode())
    assert read_cell(catcher.frame().warnings, "3.12-slim") == (None, 0)
