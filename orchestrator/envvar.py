"""An environment variable for the test containers; a secret one never shows its value in
a repr (and so in no traceback, log line or debugger view), only where it is used."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class EnvVar:
    """One environment variable for the test container."""

    name: str
    value: str
    secret: bool = False  # from {secret: ...} or {from_env: ...}: redacted everywhere

    def __repr__(self) -> str:
        shown = "'***'" if self.secret else repr(self.value)
        return f"EnvVar(name={self.name!r}, value={shown}, secret={self.secret})"
