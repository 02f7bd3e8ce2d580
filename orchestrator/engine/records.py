"""The records a cell's bootstrap writes, read back: untrusted input from the container,
typed and capped here (whichever way the engine brought them: files or a frame).

The install record (record.json, written by tagmatrix's installer while the cell's
image was built) sits in an image in which the project's own code ran afterwards
(its sdist's setup.py, as root): a hostile build once rewrote it to claim "uv
(lowest-direct)" while pip had installed. So the reports take how a cell installed
(installer, resolution, extras, groups) from the plan, and from the record only
what only the container knows: the installer's version (kept when it names the
planned installer and looks like a version) and the project's name and declared
requirements, capped and typed like every other record.
"""

from __future__ import annotations

import json
import re
from typing import Any, assert_never

from ..containerrecords import InstallRecord, Interpreter, packages_from_record
from ..jobs import InstallStep
from ..settings import ProjectKind, Resolution

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


def packages_of(raw: bytes | Any,
                step: InstallStep | None) -> tuple[dict[str, str], InstallRecord]:
    """What was installed (name -> version), and how the image installed it: ``step``,
    the plan's install step (None: no install flow, nothing to report)."""
    record = _json(raw)
    install = record.get("install") if isinstance(record, dict) else None
    return packages_from_record(record), install_record(step, install)


_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]{0,40}$")


def install_record(step: InstallStep | None, raw: Any) -> InstallRecord:
    """The plan's install step, with what only the container knows from its record."""
    if step is None:
        return InstallRecord()
    said = InstallRecord.from_record(raw)
    lowest = step.resolution is Resolution.LOWEST_DIRECT
    installer = "uv" if lowest else "pip"
    words = said.resolver.split()
    version = words[1] if len(words) > 1 and words[0] == installer \
        and _VERSION.match(words[1]) else ""
    resolver = " ".join(w for w in (installer, version) if w) \
        + (" (lowest-direct)" if lowest else "")
    return InstallRecord(resolver=resolver, resolution=str(step.resolution),
                         project=said.project, requires=said.requires,
                         extras=step.extras, groups=step.groups,
                         requirements=step.requirements,
                         artifact=said.artifact if said.artifact.endswith(_planned(step))
                         else "")


def _planned(step: InstallStep) -> tuple[str, ...]:
    """The files the plan lets the project step install (a record naming another says
    nothing true: dropped)."""
    match step.kind:
        case ProjectKind.WHEEL:
            return (".whl",)
        case ProjectKind.SDIST:
            return (".tar.gz",)
        case ProjectKind.EDITABLE | ProjectKind.NONE | ProjectKind.AUTO:
            return ()
        case _:
            assert_never(step.kind)
