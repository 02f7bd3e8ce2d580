"""One snapshot of the project per run and engine: the project image, the cells' builds
(the application template, a custom Dockerfile) and the digest every cell records all
read it, so a folder changed during the run can neither reach a build nor the report.

The engine is left out: ``stream_build`` is replaced by a recorder that reads the
context each build would send (the real builds run in tests/integration/test_context.py).
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.celllog import CellLog
from orchestrator.engine import BaseImage, dockerimage
from orchestrator.engine.context import ContextSnapshot
from orchestrator.engine.dockerbuild import BuildRequest
from orchestrator.engine.dockerimage import TEMPLATE_NAME, ImageStore
from orchestrator.errors import BuildFailed
from orchestrator.jobs import BuildSpec, ContextRules, ProjectBuild
from orchestrator.settings import ProjectKind

OLD_TEST = "def test_a():\n    pass\n"
BASE = BaseImage(reference="python:3.12-slim", id="sha256:" + "1" * 64, digest="")
NEW_TEST = OLD_TEST + "\ndef test_new():\n    assert False\n"


class Recorder:
    """What each build would have sent: (dockerfile, {member: bytes})."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    def __call__(self, _streams: object, _errors: object, request: BuildRequest,
                 _log: CellLog, _cancel: threading.Event) -> tuple[str, bool]:
        body = request.context.read()
        assert isinstance(body, bytes)
        assert len(body) == len(cast("Any", request.context))
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            members = {m.name: (archive.extractfile(m).read()  # type: ignore[union-attr]
                                if m.isfile() else b"") for m in archive.getmembers()}
        self.sent.append((request.dockerfile, members))
        return "sha256:" + "0" * 64, False


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ImageStore, Recorder, list[Path]]]:
    recorder = Recorder()
    monkeypatch.setattr(dockerimage, "stream_build", recorder)
    taken: list[Path] = []

    class Counted(ContextSnapshot):
        def __init__(self, root: Path, rules: ContextRules, **kwargs: Any) -> None:
            taken.append(root)
            super().__init__(root, rules, **kwargs)
    monkeypatch.setattr(dockerimage, "ContextSnapshot", Counted)
    monkeypatch.setattr(dockerimage, "built_from", lambda *_args: None)  # nothing to reuse
    found = ImageStore(cast("Any", None), cast("Any", None), cast("Any", None))
    found._bases[BASE.reference] = BASE  # as prepare resolves it before building
    yield found, recorder, taken
    found.close()


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text(OLD_TEST)
    (root / "ci").mkdir()
    (root / "ci" / "test.Dockerfile").write_text("FROM python\nCOPY . .\n")
    (root / ".dockerignore").write_text("ci\n")  # the custom Dockerfile is left out
    (root / ".tagmatrix.Dockerfile").mkdir()  # a project folder named as our old template
    (root / ".tagmatrix.Dockerfile" / "keep.txt").write_text("mine\n")
    return root


def specs(root: Path, rules: ContextRules) -> tuple[ProjectBuild, BuildSpec, BuildSpec]:
    built = ProjectBuild(key="p", base_image="python:3.12-slim", context=root,
                         kind=ProjectKind.SDIST, requirements=(), context_rules=rules,
                         tag="tagmatrix/p-project:sdist", timeout=60)
    template = BuildSpec(key="t", base_image="python:3.12-slim", context=root, dockerfile=None,
                         template="FROM python\nCOPY . .\n", args=(), tag="t:1", timeout=60,
                         context_rules=rules)
    custom = BuildSpec(key="c", base_image="python:3.12-slim", context=root,
                       dockerfile="ci/test.Dockerfile", template=None, args=(), tag="c:1",
                       timeout=60, context_rules=rules)
    return built, template, custom


def test_builds_and_the_recorded_digest_read_one_snapshot_whatever_changes_meanwhile(
        tmp_path: Path, store: tuple[ImageStore, Recorder, list[Path]]) -> None:
    images, recorder, taken = store
    root = project(tmp_path)
    rules = ContextRules()
    with ContextSnapshot(root, rules, content=False) as before:
        expected = before.fingerprint
    built, template, custom = specs(root, rules)
    log = CellLog(tmp_path / "cell.log")
    try:
        images._build_project(built, log, {}, threading.Event(), BASE)
        (root / "tests" / "test_a.py").write_text(NEW_TEST)  # during the run
        images.build(template, log, {}, threading.Event())
        images.build(custom, log, {}, threading.Event())
        recorded = images.fingerprint(root, rules)
    finally:
        log.close()
    assert taken == [root]  # one reading of the folder
    assert recorded == expected  # the digest of what was built, not of the folder now
    (project_build, project_members), (_, template_members), (_, custom_members) = recorder.sent
    assert project_members["project/tests/test_a.py"] == OLD_TEST.encode()
    assert "tests/test_a.py" not in project_members  # the prefix is applied while streaming
    assert template_members["tests/test_a.py"] == OLD_TEST.encode()
    assert custom_members["tests/test_a.py"] == OLD_TEST.encode()
    assert project_build == dockerimage.PROJECT_DOCKERFILE
    # the custom Dockerfile reaches the engine though .dockerignore leaves ci/ out
    assert custom_members["ci/test.Dockerfile"] == b"FROM python\nCOPY . .\n"


def test_the_template_never_replaces_a_project_path(
        tmp_path: Path, store: tuple[ImageStore, Recorder, list[Path]]) -> None:
    images, recorder, _ = store
    root = project(tmp_path)
    _, template, _ = specs(root, ContextRules())
    log = CellLog(tmp_path / "cell.log")
    try:
        images.build(template, log, {}, threading.Event())
    finally:
        log.close()
    dockerfile, members = recorder.sent[0]
    assert dockerfile == TEMPLATE_NAME
    assert members[".tagmatrix.Dockerfile/keep.txt"] == b"mine\n"
    assert members[TEMPLATE_NAME].startswith(b"FROM python\nCOPY . .\nLABEL ")  # + labels
    # the .dockerignore the engine reads names only our Dockerfile and itself
    assert members[".dockerignore"].split() == [TEMPLATE_NAME.encode(), b".dockerignore"]
    assert not [m for m in members if m.startswith(TEMPLATE_NAME + "/")]


def test_a_snapshot_that_failed_fails_every_cell_without_reading_again(
        tmp_path: Path, store: tuple[ImageStore, Recorder, list[Path]]) -> None:
    images, _, taken = store
    root = project(tmp_path)
    (root / "big.bin").write_bytes(b"x" * 4096)
    rules = ContextRules(max_bytes=1024)
    for _ in range(3):
        with pytest.raises(BuildFailed, match=r"over build\.max_context"):
            images.fingerprint(root, rules)
    assert taken == [root]


def test_mount_mode_reads_the_digest_without_copying(
        tmp_path: Path, store: tuple[ImageStore, Recorder, list[Path]]) -> None:
    images, _, _ = store
    root = project(tmp_path)
    digest = images.fingerprint(root, ContextRules(), content=False)
    found = images.snapshot(root, ContextRules(), content=False)
    assert not found.has_content
    assert digest == found.fingerprint
