"""One exception hierarchy, and every exit code the command returns.

Only infrastructure faults and user mistakes are exceptions. Failing tests are
a result (see :mod:`orchestrator.results`), never an exception. The CLI is the
one place that catches these and turns them into a message and an exit code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """What ``tagmatrix`` exits with (README: "Exit codes")."""

    OK = 0  # every gating cell passed (or nothing regressed, with --fail-on regressions)
    FAILED = 1  # a gating cell failed, errored or timed out (or something regressed)
    USAGE = 2  # bad configuration or usage, a stale lock, an unusable history file
    ENGINE = 3  # an engine or registry cannot be reached, or was lost mid-run
    INTERNAL = 4  # a bug in tagmatrix; the message names where
    SIGHUP = 129  # cancelled by SIGHUP (the terminal closed)
    SIGINT = 130  # cancelled by SIGINT (Ctrl-C)
    SIGQUIT = 131  # cancelled by SIGQUIT (Ctrl-\\)
    SIGUSR1 = 138  # cancelled by SIGUSR1
    SIGUSR2 = 140  # cancelled by SIGUSR2
    SIGTERM = 143  # cancelled by SIGTERM (a CI cancel)


class Stage(enum.StrEnum):
    """Where in a cell's life something went wrong."""

    NONE = ""
    PULL = "pull"  # the base image
    BUILD = "build"  # the project image or the cell's image
    PUSH = "push"  # a Swarm engine's push of the built image to its registry
    RUN = "run"  # the container
    RESULTS = "results"  # JUnit, the interpreter's record
    ENGINE = "engine"  # the engine was lost or never answered
    INTERNAL = "internal"  # a bug in tagmatrix



class TagmatrixError(Exception):
    """Base class: a message for the user and the process exit code."""

    exit_code: int = ExitCode.FAILED

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

    exit_code = ExitCode.USAGE

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

    exit_code = ExitCode.USAGE


class StaleLock(TagmatrixError):
    """matrix.lock does not match the matrix or the registry any more."""

    exit_code = ExitCode.USAGE


class EngineUnavailable(TagmatrixError):
    """The Docker engine cannot be reached at all (or was lost mid-run)."""

    exit_code = ExitCode.ENGINE


class RegistryError(TagmatrixError):
    """A registry could not be asked (unreachable, refused, rate-limited)."""

    exit_code = ExitCode.ENGINE

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retryable = retryable


class InternalError(TagmatrixError):
    """A bug in tagmatrix surfaced (an engine's thread raised): reports are written for
    what finished; the message names where it happened and why."""

    exit_code = ExitCode.INTERNAL


class CellError(TagmatrixError):
    """An infrastructure fault inside one cell: the cell ends as ``error``.

    ``retryable`` marks transient faults (registry rate limits, dropped
    engine connections) that the scheduler may retry; a test failure is never
    a CellError.
    """

    def __init__(self, message: str, *, stage: Stage, retryable: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage
        self.retryable = retryable
        self.image_digest = ""  # the base image's, when the engine got that far


class ImageNotFound(CellError):
    """The base image tag does not exist in the registry."""


class BuildFailed(CellError):
    """The project image could not be built (the build log is in the cell log)."""


class Cancelled(TagmatrixError):
    """The run was interrupted: 128 + the signal's number (SIGHUP 129, SIGINT 130,
    SIGQUIT 131, SIGUSR1 138, SIGUSR2 140, SIGTERM 143), as a shell reports it."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(f"run cancelled by {signal_name}")
        self.exit_code = ExitCode.__members__.get(signal_name, ExitCode.SIGTERM)
