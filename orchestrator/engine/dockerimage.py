"""Base images and builds on a Docker engine.

Pulls go through ``api.pull(stream=True)`` and fail on ``error`` chunks
(``images.pull`` ignores them), once per reference under a lock. Build contexts
are snapshots taken once per run (engine/context.py). In the install flow the
project image is built once per run (its failure is given to every cell without
building again) and each cell's image copies from it by id; the application
template and custom Dockerfiles build from the snapshot. Every build streams
(engine/dockerbuild.py).

One snapshot per project and run: the project image (which streams it under
``project/``), the cells' builds, whatever Dockerfile they name, and the digest every
cell records all read the same one, so the digest is the code that was built. A
snapshot that failed (too large, the folder changing under it) fails every cell with
the same reason without reading the folder again.
"""

from __future__ import annotations

import functools
import io
import logging
import posixpath
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import docker

from ..celllog import CellLog
from ..dockerfile import PROJECT_TOOLS, cell_context, cell_dockerfile, project_dockerfile, tools
from ..errors import BuildFailed, CellError, ImageNotFound, Stage
from ..jobs import OWN_FOLDER, BuildSpec, ContextRules, ProjectBuild
from ..labels import LABEL_PROJECT_KEY
from ..project import ProjectError, read_text
from ..settings import ProjectKind
from . import BaseImage
from .context import ContextSnapshot
from .dockerapi import Streams, Translator, inspect_if_present, inspect_image, is_transient
from .dockerbuild import BuildRequest, container_limits, indent, small_context, stream_build
from .reuse import built_from, sealed

log = logging.getLogger(__name__)

# The application template's Dockerfile, at the root of the project's context: named
# as tagmatrix's own folder, the one name no snapshot holds (engine/context.py), so it
# never replaces a project file or folder.
TEMPLATE_NAME = OWN_FOLDER
PROJECT_DOCKERFILE = "tagmatrix-project.Dockerfile"  # beside project/, never in it


def _split_reference(ref: str) -> tuple[str, str]:
    """``host:5000/library/python:3.12-slim`` -> (repository, tag or digest)."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


class ImageStore:
    """Resolves base images and builds images on one engine, for one run."""

    def __init__(self, api: docker.APIClient, streams: Streams, errors: Translator) -> None:
        self.api = api
        self.streams = streams
        self.errors = errors
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._bases: dict[str, BaseImage] = {}
        self._snapshots: dict[tuple[Path, ContextRules], ContextSnapshot | CellError] = {}
        self._dockerfiles: dict[tuple[Path, str], bytes] = {}
        self._projects: dict[str, tuple[str, str] | CellError] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- base images ---------------------------------------------------------------------------

    def base(self, reference: str, pull: str, cell_log: CellLog) -> BaseImage:
        """The base image, pulled per policy (missing/always/never) once per run."""
        with self._lock(f"base:{reference}"):
            if reference in self._bases:
                return self._bases[reference]
            present = self._inspect(reference)
            if present is None or pull == "always":
                if pull == "never":
                    raise ImageNotFound(f"{reference} is not on the engine and image.pull is "
                                        "'never'", stage=Stage.PULL)
                self._pull(reference, cell_log)
                present = self._inspect(reference)
                if present is None:
                    raise ImageNotFound(f"{reference} was pulled but is not on the engine",
                                        stage=Stage.PULL)
            else:
                cell_log.note(f"base image {reference} is on the engine (pull: {pull})")
            self._bases[reference] = present
            return present

    def _inspect(self, reference: str) -> BaseImage | None:
        data = inspect_if_present(self.api, self.errors, Stage.PULL, reference)
        if data is None:
            return None
        repo, _ = _split_reference(reference)
        digests = [d for d in data.get("RepoDigests") or [] if d.split("@")[0] == repo]
        return BaseImage(
            reference=reference,
            id=data["Id"],
            digest=digests[0].split("@", 1)[1] if digests else "",
            size=int(data.get("Size") or 0),
            labels=dict((data.get("Config") or {}).get("Labels") or {}),
        )

    def _pull(self, reference: str, cell_log: CellLog) -> None:
        repo, tag = _split_reference(reference)
        cell_log.note(f"pulling {reference}")
        started = time.monotonic()
        with self.streams.client() as (api, _abort), self.errors.errors(Stage.PULL,
                                                                          f"pull {reference}"):
            for chunk in api.pull(repo, tag, stream=True, decode=True):
                if "error" in chunk:
                    message = str(chunk.get("error"))
                    if "not found" in message.lower() or "manifest unknown" in message.lower():
                        raise ImageNotFound(f"{reference}: tag not found in the registry "
                                            f"({message})", stage=Stage.PULL)
                    raise CellError(f"pull {reference}: {message}", stage=Stage.PULL,
                                    retryable=is_transient(message))
                status = chunk.get("status")
                if status and ("Digest" in status or "Status" in status):
                    cell_log.note(status)
        cell_log.note(f"pulled {reference} in {time.monotonic() - started:.1f} s")

    # -- builds --------------------------------------------------------------------------------

    def snapshot(self, context: Path, rules: ContextRules, *,
                 content: bool = True) -> ContextSnapshot:
        """The run's one snapshot of a project (see engine/context.py); ``content``
        False: only its fingerprint is needed (mount mode), nothing is copied."""
        key = (context, rules)
        with self._lock(f"context:{key}"):
            found = self._snapshots.get(key)
            if found is None or (content and isinstance(found, ContextSnapshot)
                                 and not found.has_content):
                try:
                    found = ContextSnapshot(context, rules, content=content)
                except CellError as exc:
                    found = exc
                self._snapshots[key] = found
        if isinstance(found, CellError):
            raise found
        return found

    def fingerprint(self, context: Path, rules: ContextRules, *, content: bool = True) -> str:
        """What the project is (for attribution across runs): the snapshot's digest."""
        return self.snapshot(context, rules, content=content).fingerprint

    def _dockerfile(self, context: Path, dockerfile: str) -> bytes:
        """A custom Dockerfile the context leaves out (.dockerignore), read once per run
        as every project file is (inside the project, no link)."""
        key = (context, dockerfile)
        with self._lock(f"dockerfile:{key}"):
            if key not in self._dockerfiles:
                try:
                    text = read_text(context, dockerfile)
                except (OSError, ProjectError) as exc:
                    raise BuildFailed(f"cannot read the Dockerfile {dockerfile}: {exc}",
                                      stage=Stage.BUILD) from exc
                if text is None:
                    raise BuildFailed(f"the Dockerfile {dockerfile} is gone from {context}",
                                      stage=Stage.BUILD)
                self._dockerfiles[key] = text.encode()
            return self._dockerfiles[key]

    def project(self, spec: ProjectBuild, open_log: Callable[[str], CellLog],
                labels: dict[str, str], cancel: threading.Event,
                base: Callable[[CellLog], BaseImage]) -> tuple[str, str]:
        """The project image (id, its log's name), built once per run. A failure is kept
        and given to every cell that needs it; a transient one is tried again."""
        with self._lock(f"project:{spec.key}"):
            found = self._projects.get(spec.key)
            if isinstance(found, CellError) and found.retryable:
                found = None
            if found is None:
                name = f"_project.{spec.platform}-{spec.kind}.log"
                project_log = open_log(name)
                try:
                    found = (self._build_project(spec, project_log, labels, cancel,
                                                 base(project_log)), name)
                except CellError as exc:
                    found = exc
                finally:
                    project_log.close()
                self._projects[spec.key] = found
        if isinstance(found, CellError):
            raise found
        return found

    def _build_project(self, spec: ProjectBuild, project_log: CellLog,
                       labels: dict[str, str], cancel: threading.Event,
                       base: BaseImage) -> str:
        snapshot = self.snapshot(spec.context, spec.context_rules)
        project_log.section(f"project image ({spec.kind}) from {spec.base_image}")
        _note_context(project_log, snapshot)
        text = project_dockerfile(spec)
        project_log.note("Dockerfile:\n" + indent(text))
        own = {f"tools/{name}": tools()[name] for name in PROJECT_TOOLS}
        what = {ProjectKind.SDIST: "the project's sdist did not build",
                ProjectKind.WHEEL: "the project's wheel did not build",
                ProjectKind.EDITABLE: "the project's metadata could not be prepared"}.get(
                    spec.kind, "the project image did not build")
        sent, inputs = sealed(own, PROJECT_DOCKERFILE, text, kind="project",
                              snapshot=snapshot.fingerprint, base_id=base.id, args={},
                              labels={**labels, LABEL_PROJECT_KEY: spec.key})
        started = time.monotonic()
        image_id, cached = self._build_or_reuse(
            lambda: BuildRequest(
                context=snapshot.stream(sent, prefix="project/"),
                dockerfile=PROJECT_DOCKERFILE, tag=spec.tag, args={}, labels={},
                timeout=spec.timeout, failure=what, limits=container_limits(spec.limits)),
            spec.tag, inputs, project_log, cancel)
        project_log.note(f"project image {image_id[:19]} in {time.monotonic() - started:.1f} s"
                         + (" (all steps cached)" if cached else ""))
        return image_id

    def _build_or_reuse(self, request: Callable[[], BuildRequest], tag: str, inputs: str | None,
                        build_log: CellLog, cancel: threading.Event) -> tuple[str, bool]:
        """The image under ``tag`` when it was built from ``inputs`` (engine/reuse.py),
        else a build of ``request()``; (image id, whether nothing was built anew)."""
        if inputs is not None:
            found = built_from(self.api, self.errors, tag, inputs)
            if found is not None:
                build_log.note(f"image {tag} ({found[:19]}) used as it is: built before from "
                               f"the same inputs ({inputs[:19]}), nothing to build")
                return found, True
        return stream_build(self.streams, self.errors, request(), build_log, cancel)

    def build(self, spec: BuildSpec, cell_log: CellLog, labels: dict[str, str],
              cancel: threading.Event, project_image: str = "") -> tuple[str, bool]:
        """Build a cell's image; (image id, whether every step was cached).
        ``project_image``: the project image's id, for the install flow."""
        context: Callable[[], IO[bytes] | io.RawIOBase]
        base_id = self._bases[spec.base_image].id  # resolved by prepare, before the build
        if spec.install is not None:
            text = cell_dockerfile(spec, project_image)
            own = cell_context(spec)
            cell_log.note("Dockerfile: the install flow\n" + indent(text) + "\n" + indent(
                f"{name}: {body.decode()}" for name, body in own.items()
                if name.endswith(".json")))
            files, inputs = sealed(own, TEMPLATE_NAME, text, kind="install", snapshot="",
                                   base_id=base_id, args=dict(spec.args), labels=labels)
            context = functools.partial(small_context, files)
            dockerfile = TEMPLATE_NAME
        elif spec.template is not None:
            snapshot = self.snapshot(spec.context, spec.context_rules)
            _note_context(cell_log, snapshot)
            # our Dockerfile, and a .dockerignore naming it: the engine then keeps both
            # out of COPY . . (it removes no other file that way; the project's own
            # .dockerignore, which this one replaces, is not copied either)
            ignore = f"{TEMPLATE_NAME}\n.dockerignore\n".encode()
            files, inputs = sealed({".dockerignore": ignore}, TEMPLATE_NAME, spec.template,
                                   kind="template", snapshot=snapshot.fingerprint,
                                   base_id=base_id, args=dict(spec.args), labels=labels)
            context = functools.partial(snapshot.stream, files)
            dockerfile = TEMPLATE_NAME
            cell_log.note("Dockerfile: the application template\n" + indent(spec.template))
        else:
            dockerfile = posixpath.normpath(spec.dockerfile or "Dockerfile")
            snapshot = self.snapshot(spec.context, spec.context_rules)
            _note_context(cell_log, snapshot)
            # the engine needs the Dockerfile even when .dockerignore leaves it out (it
            # then keeps it out of COPY, as `docker build` does)
            extra = None if snapshot.has(dockerfile) else \
                {dockerfile: self._dockerfile(spec.context, dockerfile)}
            context = functools.partial(snapshot.stream, extra)
            inputs = None  # a custom Dockerfile always builds (engine/reuse.py)
        # our own Dockerfiles carry their labels in one LABEL step (engine/reuse.py); a
        # custom Dockerfile gets them from the build API
        return self._build_or_reuse(
            lambda: BuildRequest(context=context(), dockerfile=dockerfile, tag=spec.tag,
                                 args=dict(spec.args), labels=labels if inputs is None else {},
                                 timeout=spec.timeout,
                                 limits=container_limits(spec.limits)),
            spec.tag, inputs, cell_log, cancel)

    def inspect_built(self, image_id: str) -> dict[str, Any]:
        with self.errors.errors(Stage.BUILD, "inspect built image"):
            return inspect_image(self.api, image_id)

    def close(self) -> None:
        for snapshot in self._snapshots.values():
            if isinstance(snapshot, ContextSnapshot):
                snapshot.close()


def _note_context(cell_log: CellLog, snapshot: ContextSnapshot) -> None:
    cell_log.note(f"build context: {snapshot.files} entries, {snapshot.size / 1024:.0f} KiB "
                  f"from {snapshot.root} (fingerprint {snapshot.fingerprint[:19]})")
