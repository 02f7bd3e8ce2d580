"""Which engine runs which cell. Pure: engines are described, not contacted.

Rules, in order:

1. ``--engine NAME`` sends every cell there (a cell of another platform is
   skipped, with the reason);
2. a cell that an engine pins (``engines.NAME.cells``) goes to the first such
   engine of its platform;
3. any other cell goes to the first engine, in file order, that pins nothing
   and serves its platform;
4. mount mode needs the project folder on the engine's host: Swarm engines
   never take such cells.

A cell no engine can serve is skipped with the reason ("no Windows engine
configured").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .matrix import Cell, Selector
from .settings import EngineType


@dataclass(frozen=True, kw_only=True)
class Target:
    """An engine as routing sees it."""

    name: str
    type: EngineType
    oses: frozenset[str]  # what the engine serves: linux, windows (a Swarm may serve both)
    pins: tuple[Selector, ...] = ()


@dataclass(frozen=True)
class Route:
    engine: str | None
    reason: str = ""  # why no engine, when engine is None


def route(cell: Cell, platform: str, targets: Sequence[Target], *, mount: bool = False,
          forced: str | None = None) -> Route:
    """The engine for one cell, or why there is none."""
    if forced is not None:
        target = next((t for t in targets if t.name == forced), None)
        if target is None:
            return Route(None, f"no engine named {forced!r}")
        return _check(target, platform, mount) or Route(target.name)
    pinned = [t for t in targets if any(s.matches(cell) for s in t.pins)]
    candidates = pinned or [t for t in targets if not t.pins]
    reasons = []
    for target in candidates:
        problem = _check(target, platform, mount)
        if problem is None:
            return Route(target.name)
        reasons.append(problem.reason)
    if pinned:
        return Route(None, "; ".join(reasons))
    if not any(platform in t.oses for t in candidates):
        return Route(None, f"no {platform.capitalize()} engine configured")
    return Route(None, "; ".join(reasons) or "no engine configured")


def _check(target: Target, platform: str, mount: bool) -> Route | None:
    if platform not in target.oses:
        return Route(None, f"engine {target.name} runs {' and '.join(sorted(target.oses))} "
                           f"containers; this cell needs {platform}")
    if mount and target.type is EngineType.SWARM:
        return Route(None, f"engine {target.name} is a Swarm: mount mode needs the project "
                           "folder on the engine's host (use a docker engine, or build.mode: "
                           "image)")
    return None
