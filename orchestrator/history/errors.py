"""Why a history cannot be used. Both carry the CLI's exit code 2 (a file to fix)."""

from __future__ import annotations

from pathlib import Path

from ..errors import TagmatrixError


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
