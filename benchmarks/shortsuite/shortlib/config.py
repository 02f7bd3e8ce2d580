"""Settings from a TOML file, with defaults and checks (needs tomllib: Python 3.11+)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib


@dataclass(frozen=True)
class Settings:
    name: str
    workers: int = 2
    retries: int = 0
    tags: tuple[str, ...] = ()


def _toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        return tomllib.loads(text)
    raise RuntimeError("reading settings needs Python 3.11+ (tomllib)")


def load(text: str) -> Settings:
    data: dict[str, Any] = _toml(text).get("tool", {}).get("shortlib", {})
    if "name" not in data:
        raise KeyError("[tool.shortlib] needs a name")
    workers = int(data.get("workers", 2))
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return Settings(name=str(data["name"]), workers=workers, retries=int(data.get("retries", 0)),
                    tags=tuple(str(t) for t in data.get("tags", ())))
