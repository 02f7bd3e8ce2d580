"""Base images and project builds on a Docker engine.

Pulls go through ``api.pull(stream=True)`` and fail on ``error`` chunks
(``images.pull`` ignores them), once per reference under a lock. Builds use
the streaming ``api.build`` on their own client so output reaches the cell log
as it arrives and a build deadline can end the stream. The build context is
tarred once per project (honouring .dockerignore with docker-py's matcher)
and the Dockerfile is appended per build.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
from docker.utils.build import tar as make_context_tar

from ..celllog import CellLog
from ..errors import BuildFailed, CellError, ImageNotFound
from ..plan import BuildSpec
from . import BaseImage
from .dockerapi import Streams, Translator, inspect_image, is_transient

log = logging.getLogger(__name__)

TEMPLATE_NAME = ".tagmatrix.Dockerfile"
LARGE_CONTEXT = 100 * 1024 * 1024


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


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class ImageStore:
    """Resolves base images and builds project images on one engine."""

    def __init__(self, api: docker.APIClient, streams: Streams, errors: Translator) -> None:
        self.api = api
        self.streams = streams
        self.errors = errors
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._bases: dict[str, BaseImage] = {}
        self._contexts: dict[Path, bytes] = {}
        self._fingerprints: dict[Path, str] = {}

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
                                        "'never'", stage="pull")
                self._pull(reference, cell_log)
                present = self._inspect(reference)
                if present is None:
                    raise ImageNotFound(f"{reference} was pulled but is not on the engine",
                                        stage="pull")
            else:
                cell_log.note(f"base image {reference} is on the engine (pull: {pull})")
            self._bases[reference] = present
            return present

    def _inspect(self, reference: str) -> BaseImage | None:
        try:
            with self.errors.errors("pull", f"inspect {reference}"):
                data = inspect_image(self.api, reference)
        except ImageNotFound:
            return None
        except CellError as exc:
            if "No such image" in str(exc):
                return None
            raise
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
        with self.streams.client() as (api, _abort), self.errors.errors("pull",
                                                                          f"pull {reference}"):
            for chunk in api.pull(repo, tag, stream=True, decode=True):
                if "error" in chunk:
                    message = str(chunk.get("error"))
                    if "not found" in message.lower() or "manifest unknown" in message.lower():
                        raise ImageNotFound(f"{reference}: tag not found in the registry "
                                            f"({message})", stage="pull")
                    raise CellError(f"pull {reference}: {message}", stage="pull",
                                    retryable=is_transient(message))
                status = chunk.get("status")
                if status and ("Digest" in status or "Status" in status):
                    cell_log.note(status)
        cell_log.note(f"pulled {reference} in {time.monotonic() - started:.1f} s")

    # -- builds --------------------------------------------------------------------------------

    def _context_tar(self, context: Path, cell_log: CellLog) -> bytes:
        with self._lock(f"context:{context}"):
            if context not in self._contexts:
                patterns = _dockerignore(context)
                tmp = make_context_tar(context, exclude=patterns)
                try:
                    data = tmp.read(-1)
                finally:
                    tmp.close()
                with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                    names = archive.getnames()
                heavy = sorted({n.split("/")[0] for n in names} & {".git", ".venv", "venv",
                                                                   ".tox", ".nox", "node_modules"})
                if heavy:
                    log.warning("build context %s includes %s: add them to .dockerignore",
                                context, ", ".join(heavy))
                if len(data) > LARGE_CONTEXT:
                    log.warning("build context %s is %.0f MB", context, len(data) / 1e6)
                self._contexts[context] = data
            data = self._contexts[context]
        cell_log.note(f"build context: {len(data) / 1024:.0f} KiB from {context}")
        return data

    def fingerprint(self, context: Path, cell_log: CellLog) -> str:
        """What the project is, for attribution across runs (see context_fingerprint)."""
        data = self._context_tar(context, cell_log)
        with self._lock(f"fingerprint:{context}"):
            if context not in self._fingerprints:
                self._fingerprints[context] = context_fingerprint(data)
            return self._fingerprints[context]

    def _with_dockerfile(self, spec: BuildSpec, context: bytes, text: str) -> io.BytesIO:
        """The context plus our Dockerfile, which a .dockerignore entry keeps out of
        ``COPY . .`` (as docker-py does for a Dockerfile outside the context)."""
        ignore = "\n".join([*_dockerignore(spec.context), TEMPLATE_NAME, ""])
        out = io.BytesIO(context)
        with tarfile.open(fileobj=out, mode="a") as archive:
            for name, body in ((TEMPLATE_NAME, text.encode()), (".dockerignore", ignore.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(body))
        out.seek(0)
        return out

    def build(self, spec: BuildSpec, cell_log: CellLog, labels: dict[str, str],
              cancel: threading.Event) -> tuple[str, bool]:
        """Build ``spec``; returns (image id, whether every step was cached)."""
        context = self._context_tar(spec.context, cell_log)
        if spec.template is not None:
            fileobj = self._with_dockerfile(spec, context, spec.template)
            dockerfile = TEMPLATE_NAME
            cell_log.note("Dockerfile: the built-in template\n" + _indent(spec.template))
        else:
            fileobj = io.BytesIO(context)
            dockerfile = spec.dockerfile or "Dockerfile"
        state = {"timed_out": False}
        progress = _Progress()
        with self.streams.client() as (api, abort):

            def expire() -> None:
                state["timed_out"] = True
                abort()

            watchdog = threading.Timer(spec.timeout, expire)
            watchdog.daemon = True
            watchdog.start()
            stop_on_cancel = threading.Thread(target=_abort_on, args=(cancel, abort, watchdog),
                                              daemon=True)
            stop_on_cancel.start()
            try:
                with self.errors.errors("build", "build"):
                    stream = api.build(fileobj=fileobj, custom_context=True, dockerfile=dockerfile,
                                       tag=spec.tag, buildargs=dict(spec.args), labels=labels,
                                       rm=True, forcerm=True, decode=True, pull=False)
                    for chunk in stream:
                        progress = _consume(chunk, cell_log, progress)
            except CellError as exc:
                if cancel.is_set():
                    raise BuildFailed("build cancelled", stage="build") from exc
                if state["timed_out"]:
                    raise BuildFailed(f"build timed out after {spec.timeout:g} s",
                                      stage="build") from exc
                raise
            finally:
                watchdog.cancel()
        if state["timed_out"]:
            raise BuildFailed(f"build timed out after {spec.timeout:g} s", stage="build")
        if progress.error:
            raise BuildFailed(f"build failed: {progress.error.strip()}", stage="build",
                              retryable=is_transient(progress.error))
        if not progress.image_id:
            raise BuildFailed("build ended without an image (stream cut short)", stage="build")
        # every step but FROM said "Using cache"
        return progress.image_id, progress.steps > 0 and progress.cached >= progress.steps - 1

    def inspect_built(self, image_id: str) -> dict[str, Any]:
        with self.errors.errors("build", "inspect built image"):
            return inspect_image(self.api, image_id)


def context_fingerprint(tar: bytes) -> str:
    """A digest of a build context's paths, permission bits and contents, in path order.

    Not of the tar bytes: those hold modification times, and a fresh checkout of the
    same commit must fingerprint the same.
    """
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        members = sorted(archive.getmembers(), key=lambda m: m.name)
        for member in members:
            digest.update(f"{member.name}\0{member.mode & 0o777:o}\0{member.type!r}\0"
                          f"{member.linkname}\0{member.size}\0".encode())
            if member.isfile():
                extracted = archive.extractfile(member)
                if extracted is not None:
                    digest.update(extracted.read())
    return f"sha256:{digest.hexdigest()}"


def _abort_on(cancel: threading.Event, abort: Any, watchdog: threading.Timer) -> None:
    # Ends the build stream on cancellation; exits when the build ends (watchdog cancelled).
    while not cancel.wait(0.2):
        if watchdog.finished.is_set():
            return
    abort()


@dataclass(frozen=True)
class _Progress:
    image_id: str = ""
    error: str = ""
    steps: int = 0
    cached: int = 0


def _consume(chunk: dict[str, Any], cell_log: CellLog, progress: _Progress) -> _Progress:
    """One decoded chunk of the build stream: log it, note the image id or the error."""
    if "stream" in chunk:
        text = str(chunk["stream"])
        cell_log.output(text.encode())
        if text.startswith("Step "):
            return replace(progress, steps=progress.steps + 1)
        if "Using cache" in text:
            return replace(progress, cached=progress.cached + 1)
    elif "error" in chunk or "errorDetail" in chunk:
        detail = chunk.get("errorDetail") or {}
        error = str(chunk.get("error") or detail.get("message") or chunk)
        cell_log.output(f"ERROR: {error}\n".encode())
        return replace(progress, error=error)
    elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
        return replace(progress, image_id=str(chunk["aux"]["ID"]))
    elif "status" in chunk:
        cell_log.output(f"{chunk['status']} {chunk.get('progress', '')}\n".encode())
    return progress


def _indent(text: Iterable[str] | str) -> str:
    lines = text.splitlines() if isinstance(text, str) else list(text)
    return "\n".join(f"    {line}" for line in lines)
