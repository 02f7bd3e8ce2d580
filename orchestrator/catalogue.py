"""Where the catalogue of published tags comes from: built in, or refreshed.

``tagmatrix tags --refresh`` asks the configured registry for every tag of
the repository (no image is pulled) and keeps the list in the user's cache
folder (``$TAGMATRIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/tagmatrix``, else
``~/.cache/tagmatrix``), one file per registry and repository. Later runs
plan against that list; without one, the built-in catalogue (docker-library's
versions.json) applies.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from .files import write_json
from .tags import Catalogue

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    explicit = os.environ.get("TAGMATRIX_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tagmatrix"


def cache_file(registry: str, repository: str) -> Path:
    """One file per registry and repository, under the user's own folder (a cache
    directory shared between users still gives each their own lists)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{registry}__{repository}")
    return cache_dir() / "tags" / f"uid-{os.getuid()}" / f"{name}.json"


def forget_all() -> list[Path]:
    """Drop every refreshed list of this user; returns what was removed."""
    folder = cache_dir() / "tags" / f"uid-{os.getuid()}"
    removed = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in removed:
        path.unlink()
    return removed


def _source(registry: str, repository: str, when: str) -> str:
    """How a refreshed catalogue names itself in plans and errors."""
    return f"{registry}/{repository}, refreshed {when}"


def catalogue_for(registry: str, repository: str) -> Catalogue:
    """The refreshed catalogue of ``registry/repository`` if there is one, else the built-in."""
    path = cache_file(registry, repository)
    if not path.is_file():
        return Catalogue.builtin()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tags = {str(t) for t in data["tags"]}
        when = str(data.get("refreshed_at", "?"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable tag cache %s: %s", path, exc)
        return Catalogue.builtin()
    return Catalogue.from_tags(tags, source=_source(registry, repository, when))


def refresh(registry: str, repository: str) -> tuple[Catalogue, Path]:
    """Ask the registry for every tag and keep the list; returns it and where it went."""
    from .engine.registry import Registry  # HTTP: only when refreshing

    tags = Registry(registry).tags(repository)
    when = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    path = cache_file(registry, repository)
    write_json(path, {"registry": registry, "repository": repository, "refreshed_at": when,
                      "tags": sorted(tags)})
    return Catalogue.from_tags(set(tags), source=_source(registry, repository, when)), path


def forget(registry: str, repository: str) -> bool:
    """Drop the refreshed list (back to the built-in catalogue)."""
    path = cache_file(registry, repository)
    if path.is_file():
        path.unlink()
        return True
    return False
