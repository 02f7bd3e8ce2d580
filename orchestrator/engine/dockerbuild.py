"""One streaming ``docker build``: live output, a deadline, cancellation, a clear reason.

docker-py's high-level ``images.build`` consumes the whole stream before
returning and has no timeout; here the low-level ``api.build(decode=True)``
streams on its own client (see dockerapi.Streams), a watchdog ends the stream at
the deadline or on cancellation, and ``error``/``errorDetail`` chunks are handled
ourselves. A failed step's reason quotes the last error line of its output
(pip's "ERROR: No matching distribution found for X", or the "tagmatrix: error:"
line our in-container scripts print) and names the log that has the rest.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import IO, Any, cast

from ..celllog import CellLog
from ..errors import BuildFailed, CellError, Stage
from .dockerapi import Streams, Translator, is_transient

_OURS = "tagmatrix: error: "
_ERROR_LINE = re.compile(r"^\s*(?:ERROR:|error:|E: )")


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
                                   forcerm=True, decode=True, pull=False)
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
        raise BuildFailed(f"{request.failure}: {progress.cause()}{where}", stage=Stage.BUILD,
                          retryable=is_transient(progress.error))
    if not progress.image_id:
        raise BuildFailed(f"build ended without an image (stream cut short){where}",
                          stage=Stage.BUILD)
    return progress.image_id, progress.steps > 0 and progress.cached >= progress.steps - 1


def single_file_context(name: str, body: bytes) -> IO[bytes]:
    """A build context of one file (the install flow's cells copy from the project image)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
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
