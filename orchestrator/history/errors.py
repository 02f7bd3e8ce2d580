"""Why a history cannot be used (both carry the CLI's exit code 2: a file to fix), and how
the history's settings report a mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, TagmatrixError
from ..source import KeyPath, format_path

# How a settings parser makes its errors: the config reader's adds file:line:column.
ErrorFactory = Callable[[KeyPath, str, str | None], ConfigError]


def unlocated(path: KeyPath, message: str, hint: str | None = None) -> ConfigError:
    """A ConfigError naming the key only (for values that come from no file)."""
    return ConfigError(message, key=format_path(path), hint=hint)


class HistoryError(TagmatrixError):
    """The history file is unusable: corrupt, not tagmatrix's, or from a newer tagmatrix.

    Never raised after the file was changed: the file is left exactly as it was.
    """

    exit_code = 2

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {problem}", hint=hint)
        self.path = path


class HistoryUnwritable(HistoryError):
    """The history could not be written (read-only path, permissions, disk full, another
    writer held the lock past the timeout). The run itself is complete: a caller
    catches this one, warns, and finishes."""
