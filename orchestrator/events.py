"""What progress a cell makes while a run goes (the live table, plain lines, GitHub)."""

from __future__ import annotations

import enum
from collections.abc import Callable

from .results import Status


class Progress(enum.StrEnum):
    """A cell's state before it ends (it then ends in a :class:`Status`)."""

    QUEUED = "queued"  # planned, nothing done yet
    BUILDING = "building"  # its image is being built (or pulled)
    WAITING = "waiting"  # ready: waiting for one of the run's slots
    RUNNING = "running"  # its tests run (it holds a slot)
    RETRYING = "retrying"  # an infrastructure error: another attempt after a backoff



State = Progress | Status
EventSink = Callable[[str, State, str], None]  # (cell id, state, detail)


def ignore(_cell: str, _state: State, _detail: str) -> None:
    """An event sink that drops everything."""
