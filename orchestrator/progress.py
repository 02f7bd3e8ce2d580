"""Progress while a run goes: one plain line per state change (no control codes)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

FINAL = {"passed", "failed", "error", "timeout", "skipped", "cancelled"}


class PlainProgress:
    """``[  12.3s] 3.12-slim        running`` on stderr; safe from many threads."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.width = width
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, cell: str, state: str, detail: str) -> None:
        if self.quiet and state not in FINAL:
            return
        elapsed = time.monotonic() - self.start
        line = f"[{elapsed:7.1f}s] {cell:<{self.width}} {state}"
        if detail:
            line += f"  {detail}"
        with self._lock:
            print(line, file=self.stream, flush=True)
