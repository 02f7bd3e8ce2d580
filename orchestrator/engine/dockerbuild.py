"""One streaming ``docker build``: live output, a deadline, cancellation, a clear reason.

docker-py's high-level ``images.build`` consumes the whole stream before
returning and has no timeout; here the low-level ``api.build(decode=True)``
streams on its own client (see dockerapi.Streams), a watchdog ends the stream at
the deadline or on cancellation, and ``error``/``errorDetail`` chunks are handled
ourselves. A failed step's reason quotes the last error line of its output
(pip's "ERROR: No matching distribution found for X", or the "tagmatrix: error:"
line our in-container scripts print) and names the log that has the rest.

Every RUN step of a build runs a container, and in the install flow those run the
project's code (its setup.py builds the sdist, then installs it in each cell): the
classic builder applies the cells' memory limit to them, swap excluded
(:func:`container_limits`). Nothing else of a test container's confinement can be
asked of it (see README, Security model).
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import IO, Any, TypedDict, cast

from ..celllog import CellLog
from ..errors import BuildFailed, CellError, Stage
from ..settings import Limits
from .dockerapi import Streams, Translator, is_transient

_OURS = "tagmatrix: error: "
_ERROR_LINE = re.compile(r"^\s*(?:ERROR:|error:|E: )")


class BuildLimits(TypedDict, total=False):
    """The classic builder's limits of each RUN step's container, as docker-py takes
    them (``api.build(container_limits=...)``; its stubs keep their own type private)."""

    memory: int
    memswap: int
    cpushares: int
    cpusetcpus: str


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    """What to build, and how it is judged."""

    context: IO[bytes] | io.RawIOBase
    dockerfile: str
    tag: str
    args: dict[str, str]
    labels: dict[str, str]
    timeout: float
    failure: str = "build failed"  # how a failed step is reported
    limits: BuildLimits | None = None  # container_limits of every RUN step


def container_limits(limits: Limits) -> BuildLimits:
    """The build API's limits for each RUN step's container: the cells' memory, and as
    much again with swap (memswap counts memory plus swap), so none. Of the classic
    builder's limits docker-py passes only memory, memswap, cpushares and cpusetcpus:
    a cell's CPU quota (limits.cpus) cannot be passed (docker/docker-py#3249), nor
    can a pids limit, capabilities or no-new-privileges (the build API has none)."""
    return {"memory": limits.memory, "memswap": limits.memory}


def stream_build(streams: Streams, errors: Translator, request: BuildRequest, cell_log: CellLog,
                 cancel: threading.Event) -> tuple[str, bool]:
    """Build; returns (image id, whether every step but FROM came from the cache)."""
    state = {"timed_out": False}
    progress = _Progress()
    with streams.client() as (api, abort):

        def expire() -> None:
            state["timed_out"] = True
            abort()

        watchdog = threading.Timer(request.timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        threading.Thread(target=_abort_on, args=(cancel, abort, watchdog), daemon=True).start()
        try:
            with errors.errors(Stage.BUILD, "build"):
                # requests streams any object with read(); the SDK's stubs say IO[bytes]
                stream = api.build(fileobj=cast("IO[bytes]", request.context),
                                   custom_context=True,
                                   dockerfile=request.dockerfile, tag=request.tag,
                                   buildargs=request.args, labels=request.labels, rm=True,
                                   forcerm=True, decode=True, pull=False,
                                   container_limits=request.limits)
                for chunk in stream:
                    progress = _consume(chunk, cell_log, progress)
        except CellError as exc:
            if cancel.is_set():
                raise BuildFailed("build cancelled", stage=Stage.BUILD) from exc
            if state["timed_out"]:
                raise BuildFailed(f"build timed out after {request.timeout:g} s",
                                  stage=Stage.BUILD) from exc
            raise
        finally:
            watchdog.cancel()
    where = f" (see {cell_log.label})"
    if state["timed_out"]:
        raise BuildFailed(f"build timed out after {request.timeout:g} s{where}", stage=Stage.BUILD)
    if progress.error:
        raise BuildFailed(f"{request.failure}: {progress.cause()}{_killed(request, progress)}"
                          f"{where}", stage=Stage.BUILD, retryable=is_transient(progress.error))
    if not progress.image_id:
        raise BuildFailed(f"build ended without an image (stream cut short){where}",
                          stage=Stage.BUILD)
    return progress.image_id, progress.steps > 0 and progress.cached >= progress.steps - 1


def _killed(request: BuildRequest, progress: _Progress) -> str:
    """A step killed by SIGKILL (exit 137) under a memory limit most likely met it."""
    memory = request.limits.get("memory") if request.limits else None
    if memory and "non-zero code: 137" in progress.error:
        return (f" (killed: build steps share the cells' limits.memory, "
                f"{memory / 1024**2:g} MiB)")
    return ""


def small_context(files: dict[str, bytes]) -> IO[bytes]:
    """A build context of a few files held in memory (an install-flow cell: its
    Dockerfile and tagmatrix's installer; the rest is copied from the project image)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, body in sorted(files.items()):
            member = tarfile.TarInfo(name)
            member.size = len(body)
            member.mode = 0o644
            archive.addfile(member, io.BytesIO(body))
    out.seek(0)
    return out


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
    said: str = ""  # the last error line of the current step's output

    def cause(self) -> str:
        """Why the build failed: what our scripts or the installer said, else the
        engine's own message ("The command ... returned a non-zero code: 1")."""
        return (self.said or self.error.strip())[:500]


def said(text: str) -> str:
    """The last error line in a chunk of build output; ours wins over the installer's."""
    found = ""
    for line in text.splitlines():
        if line.startswith(_OURS):
            return line[len(_OURS):].strip()
        if _ERROR_LINE.match(line):
            found = line.strip()
    return found


def _consume(chunk: dict[str, Any], cell_log: CellLog, progress: _Progress) -> _Progress:
    """One decoded chunk of the build stream: log it, note the image id or the error."""
    if "stream" in chunk:
        text = str(chunk["stream"])
        cell_log.output(text.encode())
        if text.startswith("Step "):
            return replace(progress, steps=progress.steps + 1, said="")
        if "Using cache" in text:
            return replace(progress, cached=progress.cached + 1)
        line = said(text)  # our scripts print their "tagmatrix: error:" line last
        if line:
            return replace(progress, said=line)
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


def indent(text: Iterable[str] | str) -> str:
    lines = text.splitlines() if isinstance(text, str) else list(text)
    return "\n".join(f"    {line}" for line in lines)
