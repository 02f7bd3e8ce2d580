"""Integration fixtures: the real Docker engine and the lab registry, never mocks.

If the engine or the registry is not there, these tests FAIL (they do not
skip): a suite that silently skips its Docker tests would be green for the
wrong reason. Bring the lab up with `make lab`.

tagmatrix runs as a real process (``python -m orchestrator``), the way users
and CI run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

REGISTRY = "127.0.0.1:5000"
MANAGED = "org.tagmatrix.managed=true"
PID_LABEL = "org.tagmatrix.pid"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine
        pytest.fail(f"the Docker engine is not reachable ({exc}); run `make lab`", pytrace=False)
    yield client
    client.close()


def registry_tags() -> list[str]:
    url = f"http://{REGISTRY}/v2/library/python/tags/list"
    with urllib.request.urlopen(url, timeout=5) as response:
        tags: list[str] = json.load(response).get("tags") or []
    return tags


def slim_minors() -> list[str]:
    """The python minors the lab registry serves as X.Y-slim, oldest first (also used by
    the benchmarks)."""
    return sorted({t[:-5] for t in registry_tags() if t.endswith("-slim") and t.count(".") == 1},
                  key=lambda v: tuple(int(p) for p in v.split(".")))


@pytest.fixture(scope="session")
def lab_minors(docker_client: docker.DockerClient) -> list[str]:
    """The python minors the lab registry serves as X.Y-slim (at least two)."""
    try:
        minors = slim_minors()
    except OSError as exc:
        pytest.fail(f"the lab registry {REGISTRY} is not reachable ({exc}); run `make lab`",
                    pytrace=False)
    if len(minors) < 2:
        pytest.fail(f"the lab registry serves {minors}; expected two or more python minors "
                    "(run `make lab`)", pytrace=False)
    return minors


def managed_containers(client: docker.DockerClient, *, running: bool = False,
                       pid: int | None = None) -> set[str]:
    """Ids of tagmatrix's containers (``pid``: only those of that tagmatrix process, so
    runs of other people on the same engine do not count). The low-level list:
    containers.list() inspects each container afterwards and raises NotFound when one
    is removed meanwhile."""
    filters: dict[str, Any] = {"label": [MANAGED] + ([f"{PID_LABEL}={pid}"] if pid else [])}
    if running:
        filters["status"] = "running"
    return {str(c["Id"]) for c in client.api.containers(all=not running, filters=filters)}


def wait_running(client: docker.DockerClient, count: int, timeout: float = 120) -> None:
    """Until ``count`` tagmatrix containers are running (TimeoutError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while len(managed_containers(client, running=True)) < count:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{count} containers never ran")
        time.sleep(0.1)


@dataclass
class Outcome:
    """A finished tagmatrix process and what it left."""

    code: int
    out: str
    err: str
    reports: Path
    leftovers: set[str] = field(default_factory=set)

    def results(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / "results.json").read_text())
        return data

    def cells(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.results()["cells"]}


def make_project(root: Path, matrix: str, tests: dict[str, str], *,
                 requirements: str = "pytest\n") -> Path:
    """A small pytest project: requirements.txt, tests/, matrix.yaml; returns matrix.yaml."""
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text(requirements)
    for name, body in tests.items():
        (root / "tests" / name).write_text(textwrap.dedent(body).lstrip())
    path = root / "matrix.yaml"
    path.write_text(textwrap.dedent(matrix).lstrip())
    return path


def lab_matrix(pythons: list[str], *, parallel: int = 2, extra: str = "",
               command: str | list[str] = "python -m pytest -q tests", timeout: float = 120,
               test_extra: str = "") -> str:
    """A matrix.yaml for the lab registry (``test_extra``: more keys under ``test:``)."""
    listed = ", ".join(f'"{p}"' for p in pythons)
    more = textwrap.indent(textwrap.dedent(test_extra).strip("\n"), "  ")
    return (f'project: .\nimage: {{registry: "{REGISTRY}"}}\n'
            f"matrix:\n  python: [{listed}]\n  variant: [slim]\n"
            f"test:\n  command: {json.dumps(command)}\n  timeout: {timeout}\n"
            + (f"{more}\n" if more else "")
            + f"parallel: {parallel}\n{textwrap.dedent(extra)}")


def tagmatrix(*args: str, client: docker.DockerClient | None = None,
              env: dict[str, str] | None = None, timeout: float = 600) -> Outcome:
    """Run ``python -m orchestrator ARGS`` to the end; compare labelled containers around it."""
    reports = Path(args[args.index("--reports") + 1]) if "--reports" in args else Path("reports")
    with subprocess.Popen([sys.executable, "-m", "orchestrator", *args], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, **(env or {})}) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # what this process left (other runs may share the engine)
    left = managed_containers(client, pid=process.pid) if client else set()
    return Outcome(process.returncode, out, err, reports, left)


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts ``python -m orchestrator ARGS`` in the background; whatever the test does,
    the process is killed and reaped at teardown (a failed test must not leave a run
    going that the next tests would see)."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, **(env or {})})
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)
