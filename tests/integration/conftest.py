"""Integration fixtures: the real Docker engine and the lab registry, never mocks.

If the engine or the registry is not there, these tests FAIL (they do not
skip): a suite that silently skips its Docker tests would be green for the
wrong reason. Bring the lab up with `make lab`.

tagmatrix runs as a real process (``python -m orchestrator``), the way users
and CI run it. The engine is shared (other people, other worktrees' tests):
a test counts only the containers and services of the tagmatrix processes it
started (their labels name the process), and builds its projects in a
``workspace`` whose images and registry manifests it removes at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.cleanup import process_start
from orchestrator.labels import LABEL_MANAGED, LABEL_PID, LABEL_PID_START
from tests.integration.workspace import Workspace

REGISTRY = "127.0.0.1:5000"
MANAGED = f"{LABEL_MANAGED}=true"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine
        pytest.fail(f"the Docker engine is not reachable ({exc}); run `make lab`", pytrace=False)
    yield client
    client.close()


@pytest.fixture
def workspace(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Workspace]:
    """Project folders and registry repositories named with a token; at teardown, the
    images and registry manifests they gave rise to are removed (see workspace.py)."""
    with Workspace(tmp_path, docker_client, REGISTRY) as created:
        yield created


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


@dataclass(frozen=True)
class Owner:
    """One tagmatrix process as the labels on its containers and services name it: its
    PID and the PID's start time (this machine's PIDs wrap at 32768: a PID alone may
    name another run by the time a test looks)."""

    pid: int
    start: str

    @classmethod
    def of(cls, process: subprocess.Popen[str]) -> Owner:
        """Read while the process exists (it does until it is reaped)."""
        return cls(process.pid, process_start(process.pid))

    @property
    def filters(self) -> dict[str, Any]:
        return {"label": [MANAGED, f"{LABEL_PID}={self.pid}",
                          f"{LABEL_PID_START}={self.start}"]}


def managed_containers(client: docker.DockerClient, owner: Owner, *,
                       running: bool = False) -> set[str]:
    """Ids of the containers of one tagmatrix process. The low-level list:
    containers.list() inspects each container afterwards and raises NotFound when one
    is removed meanwhile."""
    filters = owner.filters | ({"status": "running"} if running else {})
    return {str(c["Id"]) for c in client.api.containers(all=not running, filters=filters)}


def managed_services(client: docker.DockerClient, owner: Owner) -> set[str]:
    """Ids of the Swarm services of one tagmatrix process (none when the engine is not
    a Swarm manager)."""
    try:
        return {str(s.id) for s in client.services.list(filters=owner.filters)}
    except docker.errors.APIError as exc:
        if exc.status_code == 503:  # "This node is not a swarm manager"
            return set()
        raise


def wait_running(client: docker.DockerClient, count: int, process: subprocess.Popen[str],
                 timeout: float = 120) -> None:
    """Until ``count`` containers of ``process`` (a tagmatrix run) are running; fails with
    its output when it exits first, TimeoutError after ``timeout``."""
    owner = Owner.of(process)
    deadline = time.monotonic() + timeout
    while len(managed_containers(client, owner, running=True)) < count:
        if process.poll() is not None:
            out, err = process.communicate(timeout=60)
            raise RuntimeError(f"tagmatrix exited with {process.returncode} before {count} "
                               f"containers ran:\n{(out + err)[-4000:]}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{count} containers never ran")
        time.sleep(0.1)


def read_stderr_until(process: subprocess.Popen[str], text: str, *,
                      timeout: float = 60) -> str:
    """Reads the process's stderr until ``text`` appears and returns what it read (the
    rest is still there for communicate()). Fails, with what it read, when the process
    closes stderr (it exited) or at the deadline: never waits for ever."""
    assert process.stderr is not None
    fd = process.stderr.fileno()  # raw reads: nothing is left in the text buffer
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {text!r} on stderr within {timeout} s; it said:\n"
                                   f"{seen.decode(errors='replace')[-4000:]}")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"tagmatrix exited ({process.wait(timeout=60)}) without "
                                   f"printing {text!r}:\n{seen.decode(errors='replace')[-4000:]}")
            seen += chunk
    return seen.decode(errors="replace")


def read_until_exit(process: subprocess.Popen[str], *,
                    timeout: float = 60) -> tuple[str, str]:
    """Reads stdout and stderr to their end (a process that exits closes them) without
    reaping the process; TimeoutError at the deadline. Until the test reaps it (wait()),
    a dead tagmatrix process is a zombie whose PID and start time still answer, so the
    start-of-run sweeps of other people's runs on this host take it for alive and leave
    its leftovers to the test (see orchestrator/cleanup.py, owner_alive)."""
    assert process.stdout is not None
    assert process.stderr is not None
    read: dict[int, bytes] = {process.stdout.fileno(): b"", process.stderr.fileno(): b""}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in read:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"tagmatrix did not exit within {timeout} s")
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    read[key.fd] += chunk
                else:
                    selector.unregister(key.fd)
    out, err = (data.decode(errors="replace") for data in read.values())
    return out, err


@dataclass
class Outcome:
    """A finished tagmatrix process and what it left (``leftovers``: ids of its
    containers and services)."""

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


def _start(args: Sequence[str], env: dict[str, str] | None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def tagmatrix(*args: str, client: docker.DockerClient | None = None,
              env: dict[str, str] | None = None, timeout: float = 600) -> Outcome:
    """Run ``python -m orchestrator ARGS`` to the end; with ``client``, list the
    containers and services it left."""
    reports = Path(args[args.index("--reports") + 1]) if "--reports" in args else Path("reports")
    with _start(args, env) as process:
        owner = Owner.of(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    left = (managed_containers(client, owner) | managed_services(client, owner)
            if client else set())
    return Outcome(process.returncode, out, err, reports, left)


def run_project(matrix_file: Path, *, client: docker.DockerClient, args: Sequence[str] = (),
                reports: Path | None = None, env: dict[str, str] | None = None,
                expect: int = 0) -> Outcome:
    """``tagmatrix run -f MATRIX_FILE --reports REPORTS ARGS`` to the end (REPORTS: default
    ``reports`` next to the matrix file); asserts its exit code, with its output as the
    message, and that it left no container or service."""
    reports = reports or matrix_file.parent / "reports"
    outcome = tagmatrix("run", "-f", str(matrix_file), "--reports", str(reports), *args,
                        client=client, env=env)
    assert outcome.code == expect, \
        f"exit code {outcome.code}, expected {expect}\n{outcome.out}\n{outcome.err}"
    assert outcome.leftovers == set(), f"the run left {outcome.leftovers}"
    return outcome


def run_matrix(root: Path, matrix: str, tests: dict[str, str], *,
               client: docker.DockerClient, args: Sequence[str] = (),
               env: dict[str, str] | None = None, expect: int = 0) -> Outcome:
    """make_project(root, ...), then run_project: one call for the usual test."""
    return run_project(make_project(root, matrix, tests), client=client, args=args, env=env,
                       expect=expect)


class Spawn:
    """Starts ``python -m orchestrator ARGS`` in the background and knows every process
    it started, so that a test can ask what they (and only they) left."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.started: list[tuple[subprocess.Popen[str], Owner]] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = _start(args, env)
        self.started.append((process, Owner.of(process)))
        return process

    def containers(self, *, running: bool = False) -> set[str]:
        """Ids of the containers of every process started here."""
        return {cid for _, owner in self.started
                for cid in managed_containers(self.client, owner, running=running)}

    def services(self) -> set[str]:
        """Ids of the Swarm services of every process started here."""
        return {sid for _, owner in self.started
                for sid in managed_services(self.client, owner)}

    def close(self) -> None:
        """Kills and reaps what still runs, then removes what its processes left (their
        own labelled services and containers: a failed test leaves nothing going)."""
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=60)
        for service in self.services():
            with contextlib.suppress(docker.errors.NotFound):  # types-docker: service API untyped
                self.client.api.remove_service(service)  # type: ignore[no-untyped-call]
        for container in self.containers():
            with contextlib.suppress(docker.errors.NotFound):  # a Swarm task's container,
                self.client.api.remove_container(container, force=True)  # gone with its service


@pytest.fixture
def spawn(docker_client: docker.DockerClient, workspace: Workspace) -> Iterator[Spawn]:
    """A :class:`Spawn`, closed at teardown, whatever the test did. It asks for the
    workspace only so that its processes and containers are gone before the
    workspace's images are removed (fixtures are torn down in reverse order)."""
    started = Spawn(docker_client)
    yield started
    started.close()
