"""The records a cell's bootstrap writes, read back: untrusted input from the container,
typed and capped here (whichever way the engine brought them: files or a frame)."""

from __future__ import annotations

import json
from typing import Any

from ..results import InstallRecord, Interpreter, packages_from_record

MAX_RECORD = 4 * 1024 * 1024  # the packages record of a large environment, with room


def _json(raw: bytes | Any) -> Any:
    if isinstance(raw, bytes):
        if not raw or len(raw) > MAX_RECORD:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return {}
    return raw


def interpreter_of(raw: bytes | Any) -> tuple[Interpreter, str]:
    """What the interpreter said of itself, and when the tests began."""
    info = _json(raw)
    if not isinstance(info, dict):
        return Interpreter(), ""
    return Interpreter.from_record(info), str(info.get("started", ""))[:64]


def packages_of(raw: bytes | Any) -> tuple[dict[str, str], InstallRecord]:
    """What was installed (name -> version) and how the image installed it."""
    record = _json(raw)
    install = record.get("install") if isinstance(record, dict) else None
    return packages_from_record(record), InstallRecord.from_record(install)
