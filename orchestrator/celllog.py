"""A cell's log file: written as output arrives, never held whole in memory.

Sections (build, run, results) get timestamped headers; container output is
written as raw chunks (records, not lines) for throughput. Past ``max_bytes``
the file says it was capped and further output is only counted. The first and
last ``keep`` bytes stay in memory for the JUnit ``system-out``. Secret values
are replaced before anything reaches the disk, including across chunk borders.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from .errors import CellError, Stage
from .redact import Redactor

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_KEEP = 32 * 1024
FLUSH_INTERVAL = 0.25  # seconds: `tail -f` on a cell log sees output this late at most


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CellLog:
    """Append-only log of one cell, safe to write from the log-reader thread."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 keep: int = DEFAULT_KEEP, secrets: Iterable[str] = (),
                 flush_interval: float = FLUSH_INTERVAL, label: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.label = label or path.name  # how reports name it: logs/<cell>.log
        self.max_bytes = max_bytes
        self.keep = keep
        self.redactor = Redactor(secrets)
        # never through a link a test or a checkout planted where the log goes
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            why = ("is a symbolic link; tagmatrix does not write through links"
                   if exc.errno == errno.ELOOP else f"cannot be written: {exc.strerror}")
            raise CellError(f"the cell log {self.label} {why}", stage=Stage.RESULTS) from exc
        self._file = os.fdopen(fd, "wb")
        self.flush_interval = flush_interval
        self._flushed = time.monotonic()
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._output_head = bytearray()
        self._output_tail = bytearray()
        self.output_bytes = 0

    def section(self, title: str) -> None:
        """A timestamped header: ``==> 2026-11-26T17:40:01.123Z run``."""
        self._write_raw(f"\n==> {now_iso()} {title}\n".encode(), force=True)

    def note(self, text: str) -> None:
        """A tagmatrix line (not container output)."""
        line = self.redactor.text(text)
        self._write_raw(f"[tagmatrix] {line}\n".encode(), force=True)

    def output(self, chunk: bytes) -> None:
        """Container or build output, as it arrives."""
        chunk = self.redactor.feed(chunk)
        if chunk:
            self._output(chunk)

    def end_output(self) -> None:
        rest = self.redactor.flush()
        if rest:
            self._output(rest)

    def _output(self, chunk: bytes) -> None:
        with self._lock:
            self.output_bytes += len(chunk)
            room = self.keep - len(self._output_head)
            if room > 0:
                self._output_head += chunk[:room]
            self._output_tail += chunk[-self.keep:]
            if len(self._output_tail) > 2 * self.keep:
                del self._output_tail[:-self.keep]
        self._write_raw(chunk)

    def restart_excerpt(self) -> None:
        """Keep head and tail from here on (the run's output, not the build's)."""
        with self._lock:
            self._output_head = bytearray()
            self._output_tail = bytearray()
            self.output_bytes = 0

    def output_excerpt(self) -> str:
        """Head and tail of the output with a "[truncated N bytes]" marker between."""
        with self._lock:
            head = bytes(self._output_head)
            tail = bytes(self._output_tail)
            total = self.output_bytes
        rest = total - len(head)
        if rest <= len(tail):  # head and tail still hold everything
            whole = head + tail[len(tail) - rest:] if rest else head
            return whole.decode("utf-8", errors="replace")
        tail = tail[-self.keep:]
        cut = total - len(head) - len(tail)
        return (head.decode("utf-8", errors="replace") + f"\n[truncated {cut} bytes]\n"
                + tail.decode("utf-8", errors="replace"))

    def _write_raw(self, data: bytes, *, force: bool = False) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self.written + len(data) > self.max_bytes and not force:
                room = max(self.max_bytes - self.written, 0)
                if room:
                    self._file.write(data[:room])
                    self.written += room
                if self.dropped == 0:
                    self._file.write(
                        f"\n[tagmatrix] log capped at {self.max_bytes} bytes; "
                        "further output is counted, not written\n".encode())
                self.dropped += len(data) - room
                return
            self._file.write(data)
            self.written += len(data)
            now = time.monotonic()
            if force or now - self._flushed >= self.flush_interval:
                self._file.flush()
                self._flushed = now

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self.dropped:
                self._file.write(f"\n[tagmatrix] {self.dropped} bytes of output were not "
                                 "written (log cap)\n".encode())
            self._file.close()
