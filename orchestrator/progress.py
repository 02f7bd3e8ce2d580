"""Progress while a run goes.

On a terminal: a live table of cells (state, elapsed, attempt) drawn by rich on
stderr. Without one (CI logs): one plain line per state change, no control
codes. ``-q`` keeps only final states; ``-v`` adds details.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

FINAL = {"passed", "failed", "error", "timeout", "skipped", "cancelled"}
STYLE = {"passed": "green", "failed": "red", "error": "magenta", "timeout": "yellow",
         "skipped": "dim", "cancelled": "yellow", "running": "cyan", "building": "blue",
         "retrying": "yellow", "queued": "dim", "pulling": "blue"}


class PlainProgress:
    """``[  12.3s] 3.12-slim        running`` on stderr; safe from many threads."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 verbose: bool = False, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self.width = width
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, cell: str, state: str, detail: str) -> None:
        if self.quiet and state not in FINAL:
            return
        elapsed = time.monotonic() - self.start
        line = f"[{elapsed:7.1f}s] {cell:<{self.width}} {state}"
        if detail and (self.verbose or state in FINAL or state == "retrying"):
            line += f"  {detail}"
        with self._lock:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class _Row:
    state: str = "queued"
    detail: str = ""
    began: float | None = None  # when it left the queue
    ended: float | None = None
    attempt: int = 1
    changed: float = field(default_factory=time.monotonic)


class LiveProgress:
    """A live table of the cells on a terminal (rich), refreshed four times a second."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.rows: dict[str, _Row] = {}
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._live = Live(console=console, refresh_per_second=4, transient=False,
                          get_renderable=self._render, redirect_stdout=False,
                          redirect_stderr=False)

    def __call__(self, cell: str, state: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            row = self.rows.setdefault(cell, _Row())
            if state == "retrying":
                row.attempt += 1
            if row.began is None and state not in ("queued", "skipped"):
                row.began = now
            if state in FINAL:
                row.ended = now
            row.state, row.detail, row.changed = state, detail, now

    def _render(self) -> RenderableType:
        now = time.monotonic()
        with self._lock:
            rows = list(self.rows.items())
        active = [r for r in rows if r[1].state not in FINAL]
        done = sorted((r for r in rows if r[1].state in FINAL), key=lambda r: -r[1].changed)
        room = max(self.console.height - 6, 5)
        shown = (active + done)[:room]
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for name in ("cell", "state", "elapsed", "attempt", "detail"):
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        for cell, row in shown:
            elapsed = "" if row.began is None else \
                f"{(row.ended or now) - row.began:.1f}s"
            detail = row.detail if (self.verbose or row.state in FINAL) else ""
            table.add_row(cell, Text(row.state, style=STYLE.get(row.state, "")), elapsed,
                          str(row.attempt) if row.attempt > 1 else "", detail[:80])
        counts: dict[str, int] = {}
        for _, row in rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        footer = Text(f"{now - self.start:.0f}s  " + "  ".join(
            f"{n} {state}" for state, n in sorted(counts.items())), style="dim")
        if len(rows) > len(shown):
            footer.append(f"  (+{len(rows) - len(shown)} not shown)")
        grid = Table.grid()
        grid.add_row(table)
        grid.add_row(footer)
        return grid

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._live.stop()


def progress_for(*, quiet: bool, verbose: bool) -> PlainProgress | LiveProgress:
    """Live on a terminal (stderr), plain lines otherwise or with -q."""
    console = Console(stderr=True)
    if console.is_terminal and not quiet:
        return LiveProgress(console, verbose=verbose)
    return PlainProgress(quiet=quiet, verbose=verbose)
