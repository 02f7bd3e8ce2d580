"""matrix.lock: every cell's base image pinned to a digest, for reproducible gates.

``tagmatrix lock`` asks the registry (no pull) what each planned cell's tag
points at now and writes the digests next to matrix.yaml. ``run --locked``
builds from those digests (``FROM <repository>@sha256:...``) whatever the
tags point at since, and refuses to start when the lock does not cover a
cell or a locked digest is gone from the registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import StaleLock
from .files import write_json
from .jobs import PLANNED, Job

if TYPE_CHECKING:
    from .engine.registry import Registry

LOCK_VERSION = 1


@dataclass(frozen=True)
class Lock:
    registry: str
    repository: str
    digests: dict[str, str]  # tag -> sha256:...
    created: str = ""
    path: str = "matrix.lock"  # the file it was read from, for messages

    def reference(self, tag: str) -> str:
        return f"{self.registry}/{self.repository}@{self.digests[tag]}"

    def to_json(self) -> dict[str, Any]:
        return {"version": LOCK_VERSION, "created": self.created, "registry": self.registry,
                "repository": self.repository,
                "images": {tag: {"digest": d} for tag, d in sorted(self.digests.items())}}


def lock_path(config: Config) -> Path:
    return config.file.with_suffix(".lock")


def resolve(config: Config, jobs: Iterable[Job], registry: Registry | None = None) -> Lock:
    """The digest each planned cell's tag points at now (Registry API, no pull)."""
    from .engine.registry import Registry

    registry = registry or Registry(config.image.registry)
    digests: dict[str, str] = {}
    missing = []
    for job in jobs:
        tag = job.cell.tag
        if job.state != PLANNED or tag in digests:
            continue
        digest = registry.digest(config.image.repository, tag)
        if digest is None:
            missing.append(tag)
        else:
            digests[tag] = digest
    if missing:
        raise StaleLock(f"not in {config.image.registry}/{config.image.repository}: "
                        + ", ".join(sorted(set(missing))),
                        hint="remove those cells (exclude) or fix the tags, then lock again")
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Lock(config.image.registry, config.image.repository, digests, created)


def write(lock: Lock, path: Path) -> None:
    write_json(path, lock.to_json())


def read(path: Path) -> Lock:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Lock(registry=str(data["registry"]), repository=str(data["repository"]),
                    digests={tag: str(v["digest"]) for tag, v in data["images"].items()},
                    created=str(data.get("created", "")), path=str(path))
    except FileNotFoundError as exc:
        raise StaleLock(f"{path}: no lock file", hint="run `tagmatrix lock` first") from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StaleLock(f"{path}: not a tagmatrix lock file ({exc})",
                        hint="run `tagmatrix lock` to write it again") from exc


def check(lock: Lock, config: Config, jobs: Iterable[Job],
          registry: Registry | None = None) -> None:
    """Refuse a lock that does not cover every planned cell, or whose digests are gone."""
    if (lock.registry, lock.repository) != (config.image.registry, config.image.repository):
        raise StaleLock(f"{lock.path} is for {lock.registry}/{lock.repository}, the matrix "
                        f"uses {config.image.registry}/{config.image.repository}",
                        hint="run `tagmatrix lock` again")
    tags = sorted({j.cell.tag for j in jobs if j.state == PLANNED})
    uncovered = [t for t in tags if t not in lock.digests]
    if uncovered:
        raise StaleLock(f"{lock.path} has no digest for {', '.join(uncovered)}",
                        hint="run `tagmatrix lock` again")
    from .engine.registry import Registry

    registry = registry or Registry(lock.registry)
    gone = [f"{t} ({lock.digests[t]})" for t in tags
            if registry.digest(lock.repository, lock.digests[t]) is None]
    if gone:
        raise StaleLock(f"locked images are gone from {lock.registry}/{lock.repository}: "
                        + ", ".join(gone),
                        hint="lock again to move to what the tags point at now")
