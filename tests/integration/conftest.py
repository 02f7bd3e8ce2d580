"""Integration fixtures: the real Docker engine and the lab registry, never mocks.

If the engine or the registry is not there, these tests FAIL (they do not
skip): a suite that silently skips its Docker tests would be green for the
wrong reason. Bring the lab up with `make lab`.
"""

from __future__ import annotations

import json
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.cli import main

REGISTRY = "127.0.0.1:5000"
MANAGED = "org.tagmatrix.managed=true"


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
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - fixed local URL
        tags: list[str] = json.load(response).get("tags") or []
    return tags


@pytest.fixture(scope="session")
def lab_minors(docker_client: docker.DockerClient) -> list[str]:
    """The python minors the lab registry serves as X.Y-slim (at least two)."""
    try:
        tags = registry_tags()
    except OSError as exc:
        pytest.fail(f"the lab registry {REGISTRY} is not reachable ({exc}); run `make lab`",
                    pytrace=False)
    minors = sorted({t[:-5] for t in tags if t.endswith("-slim") and t.count(".") == 1},
                    key=lambda v: tuple(int(p) for p in v.split(".")))
    if len(minors) < 2:
        pytest.fail(f"the lab registry serves {minors}; expected two or more python minors "
                    "(run `make lab`)", pytrace=False)
    return minors


def managed_containers(client: docker.DockerClient) -> list[str]:
    return [c.id for c in client.containers.list(all=True, filters={"label": MANAGED})]


@pytest.fixture
def no_leftovers(docker_client: docker.DockerClient) -> Iterator[None]:
    """Asserts the test left no tagmatrix container behind (compared by label)."""
    before = set(managed_containers(docker_client))
    yield
    after = set(managed_containers(docker_client))
    assert after - before == set(), f"containers left behind: {after - before}"


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    reports: Path

    def results(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / "results.json").read_text())
        return data

    def cells(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.results()["cells"]}


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """A small pytest project in tmp_path with the given test files and matrix.yaml."""

    def make(matrix: str, tests: dict[str, str], *, requirements: str = "pytest\n") -> Path:
        root = tmp_path / "project"
        (root / "tests").mkdir(parents=True, exist_ok=True)
        (root / "requirements.txt").write_text(requirements)
        for name, body in tests.items():
            (root / "tests" / name).write_text(textwrap.dedent(body).lstrip())
        (root / "matrix.yaml").write_text(textwrap.dedent(matrix).lstrip())
        return root

    return make


@pytest.fixture
def tagmatrix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., Outcome]:
    """Runs ``tagmatrix`` in-process (the real CLI, the real engine)."""

    def run(*args: str, reports: Path | None = None) -> Outcome:
        reports = reports or tmp_path / "reports"
        argv = list(args)
        if argv and argv[0] == "run" and "--reports" not in argv:
            argv += ["--reports", str(reports)]
        code = main(argv)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err, reports)

    return run
