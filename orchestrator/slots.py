"""The run's concurrency, owned by the scheduler: ``parallel`` slots and the halt.

A cell holds a slot from "go" to its container's exit only: start-up ahead of its
turn, collecting results and removal happen outside, while the next cell runs. A
freed slot goes to the queued cell with the best priority (longest expected first),
whichever thread asks first: cells are queued as their images become ready, not in
the order they should run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import CellError


class Halt:
    """Stops a run from starting containers, with the reason (an engine was lost);
    set by whoever sees the fault first, read by every waiting cell."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Slots:
    """``count`` slots, granted by priority (lower first)."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._queue: dict[str, tuple[float, int]] = {}  # cell -> priority (lower first)
        self._cond = threading.Condition()
        self.held = 0  # slots in use now
        self.most = 0  # the most ever in use at once

    def enqueue(self, cell: str, priority: tuple[float, int] = (0.0, 0)) -> None:
        with self._cond:
            self._queue[cell] = priority
            self._cond.notify_all()

    def _first(self) -> str:
        return min(self._queue, key=self._queue.__getitem__)

    def acquire(self, cell: str, timeout: float) -> bool:
        with self._cond:
            self._queue.setdefault(cell, (float("inf"), 0))
            granted = self._cond.wait_for(
                lambda: self._free > 0 and self._first() == cell, timeout)
            if granted:
                del self._queue[cell]
                self._free -= 1
                self.held += 1
                self.most = max(self.most, self.held)
                self._cond.notify_all()
            return granted

    def queued(self) -> int:
        """Cells waiting for a slot."""
        with self._cond:
            return len(self._queue)

    def withdraw(self, cell: str) -> None:
        with self._cond:
            if self._queue.pop(cell, None) is not None:
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self.held -= 1
            self._cond.notify_all()

    def hold(self, cell: str, stopped: Callable[[], CellError | None],
             poll: float = 0.2) -> Callable[[], None]:
        """Wait for a slot for ``cell``; returns its release (safe to call twice).
        While waiting, and once granted, ``stopped()`` may name why the cell must not
        run (cancelled, the engine lost): the slot is then given back and that
        error raised."""
        try:
            while not self.acquire(cell, timeout=poll):
                problem = stopped()
                if problem is not None:
                    raise problem
        except CellError:
            self.withdraw(cell)
            raise
        lock = threading.Lock()
        held = [True]

        def release() -> None:
            with lock:
                if held[0]:
                    held[0] = False
                    self.release()

        problem = stopped()  # stopped while we waited
        if problem is not None:
            release()
            raise problem
        return release


MAX_RUN_CASES = 1_000_000  # per-test results one run keeps in memory, all cells together


class CaseBudget:
    """How many per-test results the run may still keep, shared by every cell and engine:
    each cell is capped (junit_in.MAX_CASES), and so is their sum, or a few cells of
    hostile JUnit would take the memory the reports need (8 cells of 240,000 cases
    each reached 3.3 GB and lost every report)."""

    def __init__(self, total: int = MAX_RUN_CASES) -> None:
        self.left = total
        self.total = total
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        """Whether a cell's ``count`` results fit; if they do, they are taken."""
        with self._lock:
            if count > self.left:
                return False
            self.left -= count
            return True
