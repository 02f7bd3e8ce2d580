"""tagmatrix's own log: reports/tagmatrix.log for a run, and what reaches stderr."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TextIO

from .errors import UsageError

ROOT = "orchestrator"


def attach_run_log(reports: Path) -> logging.Handler:
    """reports/tagmatrix.log through concurrent-log-handler: it rotates instead of
    growing without bound, and `tagmatrix report` may log while a run appends. Neither
    the log nor the handler's lock file may be a link (the handler would follow it)."""
    for name in ("tagmatrix.log", ".__tagmatrix.lock"):
        if (reports / name).is_symlink():
            raise UsageError(f"{reports / name} is a symbolic link; tagmatrix does not write "
                             "through links", hint="remove the link")
    from concurrent_log_handler import ConcurrentRotatingFileHandler  # only for a run

    handler = ConcurrentRotatingFileHandler(str(reports / "tagmatrix.log"),
                                            maxBytes=10 * 1024 * 1024, backupCount=3,
                                            encoding="utf-8")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler


def detach(handler: logging.Handler) -> None:
    logging.getLogger(ROOT).removeHandler(handler)
    handler.close()


class _LevelName(logging.Formatter):
    """``tagmatrix: warning: ...``, ``tagmatrix: info: ...``: each line says what it is."""

    def format(self, record: logging.LogRecord) -> str:
        return f"tagmatrix: {record.levelname.lower()}: {record.getMessage()}"


def attach_stderr(stream: TextIO, *, verbose: bool) -> logging.Handler:
    """Warnings (and with -v, information) on stderr. Errors are not logged there: the
    CLI prints each error once, from the exception that carries it."""
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.addFilter(lambda record: record.levelno < logging.ERROR)
    handler.setFormatter(_LevelName())
    logging.getLogger(ROOT).addHandler(handler)
    return handler
