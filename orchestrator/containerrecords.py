"""What a container reports about itself, read back as capped, typed values.

Everything here comes from inside a cell, where the project's tests ran: a value that
has not the expected shape is dropped and every string and list is capped, so a
hostile record reaches no report as more than a short, printable text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """What the interpreter in the container reported about itself."""

    version: str = ""
    executable: str = ""
    implementation: str = ""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Interpreter:
        """From the record the container's bootstrap writes (see engine/bootstrap.py).
        A test can overwrite it: what does not have the shape of a version, an
        implementation's name or a path is dropped, so it reaches no report (and a cell
        without a usable version fails its interpreter check)."""
        return cls(version=_shaped(_VERSION, record.get("version")),
                   executable=_shaped(_PATH, record.get("executable")),
                   implementation=_shaped(_NAME, record.get("implementation")))


# sys.version's first word ("3.13.0", "3.15.0b3", "3.14.0+" for a build from git), a
# sys.implementation name, an absolute path without control characters or spaces
_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?:(?:a|b|rc)[0-9]{1,3})?\+?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_PATH = re.compile(r"(?:/|[A-Za-z]:\\)[^\x00-\x20\x7f]{0,255}")


# a distribution file's name (PEP 427 wheel, PEP 625 sdist), nothing else
_ARTIFACT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,200}\.(?:whl|tar\.gz)")


def _shaped(pattern: re.Pattern[str], value: Any) -> str:
    """``value`` if it is a string of that shape, else ""."""
    return value if isinstance(value, str) and pattern.fullmatch(value) else ""


MAX_PACKAGES = 5000  # distributions kept from a cell's record (it comes from the container)
MAX_TEXT = 300  # characters kept of each name, version or requirement


def text(value: Any) -> str:
    """A scalar from a record as a capped string; anything else is ""."""
    return str(value)[:MAX_TEXT] if isinstance(value, (str, int, float)) else ""


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(text(v) for v in value[:MAX_PACKAGES]) if isinstance(value, list) else ()


@dataclass(frozen=True, kw_only=True)
class InstallRecord:
    """How the cell's image installed the project and its test dependencies (from the
    record the in-container installer wrote; untrusted: capped and typed here)."""

    resolver: str = ""  # "pip 26.3" or "uv 0.13.9 (lowest-direct)"
    resolution: str = ""
    project: str = ""  # the project's distribution name
    requires: tuple[str, ...] = ()  # the project's own Requires-Dist
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()  # the requirements files, as install: lists them
    artifact: str = ""  # the wheel or sdist file the project step installed

    @classmethod
    def from_record(cls, record: Any) -> InstallRecord:
        if not isinstance(record, dict):
            return cls()
        found = record.get("project")
        project: dict[str, Any] = found if isinstance(found, dict) else {}
        return cls(resolver=text(record.get("resolver", "")),
                   resolution=text(record.get("resolution", "")),
                   project=text(project.get("name", "")),
                   requires=_texts(project.get("requires")),
                   extras=_texts(record.get("extras")), groups=_texts(record.get("groups")),
                   requirements=_texts(record.get("requirements")),
                   artifact=_shaped(_ARTIFACT, record.get("artifact")))


def packages_from_record(record: Any) -> dict[str, str]:
    """name -> version of what the cell had installed (capped, strings only)."""
    found = record.get("packages") if isinstance(record, dict) else None
    if not isinstance(found, dict):
        return {}
    return {text(k): text(v) for k, v in list(found.items())[:MAX_PACKAGES]
            if isinstance(k, str)}
