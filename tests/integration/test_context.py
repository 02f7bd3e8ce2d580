"""Build contexts on the real engine: the digest a cell records is the code it built (a
folder changed during the build is caught by the next run's --baseline), tagmatrix's
own output never enters an image whatever .dockerignore says, a project path named as
our template survives, a hostile .dockerignore is refused in a second, and a context
over build.max_context fails every cell naming its largest file, without copying it.

The folder is changed *during* the build by the build itself: a RUN step asks an HTTP
server of the test (on the engine's bridge gateway) to change it, and waits for the
answer; no sleep decides when."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable

import docker
import pytest

from tests.integration.conftest import (
    lab_matrix,
    make_project,
    run_project,
    tagmatrix,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

GATEWAY = "172.17.0.1"  # the default bridge's gateway: build containers reach the host here
OK = {"test_a.py": "def test_a():\n    pass\n"}
FAILING = "\n\ndef test_added_during_the_build():\n    assert False\n"


class Barrier:
    """An HTTP server on the bridge gateway: the first request runs ``action`` (the test
    changing the project folder) and only then answers, so the build that asked goes
    on after the change."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.calls = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if owner.calls == 0:
                    action()
                owner.calls += 1
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"go")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((GATEWAY, 0), Handler)
        self.url = f"http://{GATEWAY}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Barrier:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG BARRIER
RUN ["python", "-c", "import os, urllib.request as u; u.urlopen(os.environ['BARRIER']).read()"]
WORKDIR /usr/src/app
COPY requirements.txt ./
RUN ["pip", "install", "--no-cache-dir", "-q", "-r", "requirements.txt"]
COPY . .
"""


def test_the_recorded_digest_is_the_code_built_not_the_folder_after_the_build(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    test_a = root / "tests" / "test_a.py"

    def add_a_failing_test() -> None:
        test_a.write_text(test_a.read_text() + FAILING)
    with Barrier(add_a_failing_test) as barrier:
        path = make_project(root, lab_matrix(lab_minors[:1], extra=f"""
            build:
              dockerfile: Dockerfile
              args: {{BARRIER: "{barrier.url}"}}
        """), OK)
        (root / "Dockerfile").write_text(DOCKERFILE)
        first = run_project(path, client=docker_client, args=["--no-history"])
        assert barrier.calls == 1  # the folder changed while the cell's image was built
    assert "test_added_during_the_build" in test_a.read_text()
    before = next(iter(first.cells().values()))
    assert before["status"] == "passed"  # it built the snapshot: the old code
    baseline = root.parent / f"{root.name}-baseline.json"  # outside: the project is as built
    baseline.write_text((root / "reports" / "results.json").read_text())
    with Barrier(lambda: None) as barrier:  # the RUN step is cached now; it may not ask
        second = run_project(path, client=docker_client, expect=1,
                             args=["--no-history", "--baseline", str(baseline)])
    after = next(iter(second.cells().values()))
    assert after["status"] == "failed"
    assert after["project_digest"] != before["project_digest"]
    summary = (root / "reports" / "summary.md").read_text()
    assert "project changed" in summary, summary
    assert "project unchanged" not in summary


def test_tagmatrix_output_never_enters_an_image_and_a_template_named_path_survives(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    tests = {"test_content.py": """
        import os

        def test_own_output_is_not_here():
            assert not os.path.exists(".tagmatrix")
            assert not os.path.exists("reports")
            assert not os.path.exists("ci/.tagmatrix")

        def test_vcs_came_back_with_its_exclamation_mark():
            assert open(".git/HEAD").read() == "ref: refs/heads/main\\n"

        def test_a_folder_named_as_the_old_template_is_intact():
            assert open(".tagmatrix.Dockerfile/keep.txt").read() == "mine\\n"
    """}
    path = make_project(root, lab_matrix(lab_minors[:1]), tests)
    (root / ".dockerignore").write_text("!.tagmatrix\n!.tagmatrix/**\n!reports\n!reports/**\n"
                                        "!ci\n!ci/**\n!.git\n!.git/**\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".tagmatrix").mkdir()
    (root / ".tagmatrix" / "history.db").write_bytes(b"earlier runs")
    (root / "ci" / ".tagmatrix").mkdir(parents=True)  # a history beside ci/matrix.yaml
    (root / "ci" / "matrix.yaml").write_text(
        lab_matrix(lab_minors[:1]).replace("project: .\n", "project: ..\n", 1))
    (root / "ci" / ".tagmatrix" / "history.db").write_bytes(b"earlier runs")
    (root / ".tagmatrix.Dockerfile").mkdir()
    (root / ".tagmatrix.Dockerfile" / "keep.txt").write_text("mine\n")
    first = run_project(path, client=docker_client, args=["--no-history"])
    assert next(iter(first.cells().values()))["tests"]["passed"] == 3
    (root / ".tagmatrix" / "history.db").write_bytes(b"one more run")
    second = run_project(path, client=docker_client, args=["--no-history"])
    digests = {c["project_digest"] for o in (first, second) for c in o.cells().values()}
    assert len(digests) == 1, "a run's own output changed the project's digest"
    nested = run_project(root / "ci" / "matrix.yaml", client=docker_client,
                         reports=root / "ci-reports", args=["--no-history"])
    assert next(iter(nested.cells().values()))["tests"]["passed"] == 3


def test_a_dockerignore_over_the_cap_is_refused_at_once_and_a_large_one_is_quick(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    tests = {"test_content.py": """
        import os

        def test_the_patterns_applied():
            assert not os.path.exists("data/drop.txt")
            assert open("data/keep.txt").read() == "kept"
    """}
    path = make_project(root, lab_matrix(lab_minors[:1]), tests)
    (root / "data").mkdir()
    (root / "data" / "keep.txt").write_text("kept")
    (root / "data" / "drop.txt").write_text("dropped")
    for i in range(500):  # files for the patterns to be matched against
        (root / "data" / f"f{i}.txt").write_text(str(i))
    padding = [f"**/nomatch{i}/**" for i in range(997)]
    (root / ".dockerignore").write_text("\n".join([*padding, "data/*.txt", "!data/keep.txt",
                                                   "!data/f*.txt"]) + "\n")
    started = time.monotonic()
    outcome = run_project(path, client=docker_client, args=["--no-history"])
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 1
    assert time.monotonic() - started < 300
    (root / ".dockerignore").write_text("\n".join([*padding, *(f"x{i}" for i in range(4))]))
    started = time.monotonic()
    refused = tagmatrix("run", "-f", str(path), "--reports", str(root / "reports"))
    assert refused.code == 2, refused.err
    assert time.monotonic() - started < 60
    lines = [line for line in refused.err.splitlines() if line.startswith("tagmatrix: error:")]
    assert lines == [f"tagmatrix: error: {path}:1:10: project: {root / '.dockerignore'} "
                     "has 1001 patterns, over tagmatrix's cap of 1000"], refused.err


def test_a_context_over_max_context_fails_every_cell_naming_its_largest_file(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2]), OK)
    with (root / "data.bin").open("wb") as handle:  # sparse: 3 GiB claimed, 0 on disk
        handle.truncate(3 * 1024**3)
    started = time.monotonic()
    outcome = run_project(path, client=docker_client, args=["--no-history"], expect=1)
    assert time.monotonic() - started < 120  # refused from the listing: nothing copied
    cells = outcome.cells().values()
    assert len(cells) == 2
    for cell in cells:
        assert cell["status"] == "error", cell
        assert "is 3.0 GiB, over build.max_context (2.0 GiB)" in cell["reason"], cell
        assert "data.bin (3.0 GiB)" in cell["reason"], cell
    (root / "matrix.yaml").write_text(lab_matrix(lab_minors[:1], extra="build:\n"
                                                 "  max_context: 4g\n"))
    (root / "data.bin").unlink()
    with (root / "data.bin").open("wb") as handle:
        handle.truncate(64 * 1024**2)
    raised = run_project(path, client=docker_client, args=["--no-history"])
    assert next(iter(raised.cells().values()))["status"] == "passed"

