"""One exception hierarchy; every class carries the exit code the CLI returns.

Only infrastructure faults and user mistakes are exceptions. Failing tests are
a result (see :mod:`orchestrator.results`), never an exception. The CLI is the
one place that catches these and turns them into a message and an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass


class TagmatrixError(Exception):
    """Base class: a message for the user and the process exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Location:
    """Where in a configuration file something was found (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ConfigError(TagmatrixError):
    """matrix.yaml is wrong: names the file, line, column and key path."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.location = location
        self.key = key
        where = f"{location}: " if location else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}", hint=hint)


class UsageError(TagmatrixError):
    """Bad command-line usage (unknown profile, bad --only expression, ...)."""

    exit_code = 2


class EngineUnavailable(TagmatrixError):
    """The Docker engine cannot be reached at all (or was lost mid-run)."""

    exit_code = 3


class CellError(TagmatrixError):
    """An infrastructure fault inside one cell: the cell ends as ``error``.

    ``retryable`` marks transient faults (registry rate limits, dropped
    engine connections) that the scheduler may retry; a test failure is never
    a CellError.
    """

    exit_code = 1

    def __init__(self, message: str, *, stage: str, retryable: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage
        self.retryable = retryable


class ImageNotFound(CellError):
    """The base image tag does not exist in the registry."""


class BuildFailed(CellError):
    """The project image could not be built (the build log is in the cell log)."""


class Cancelled(TagmatrixError):
    """The run was interrupted (SIGINT 130, SIGTERM 143)."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(f"run cancelled by {signal_name}")
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
