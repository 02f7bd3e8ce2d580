"""The engines of a run: connected (those that do not answer, with why) and described
for routing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import Config
from .engine import FullEngine
from .errors import EngineUnavailable
from .routing import Target
from .settings import EngineSettings

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineSettings], FullEngine]


def connect_all(config: Config, engine: str | None,
                factory: EngineFactory) -> tuple[dict[str, FullEngine],
                                                 dict[str, EngineUnavailable]]:
    """The engines a run may use, connected; those that do not answer, with why (the
    run reports it once, from the error)."""
    settings = {e.name: e for e in config.engines}
    if engine is not None:
        config.require_engine(engine)
    connected: dict[str, FullEngine] = {}
    down: dict[str, EngineUnavailable] = {}
    for name in [engine] if engine else list(settings):
        try:
            connected[name] = factory(settings[name])
            info = connected[name].info()
            log.info("engine %s: %s %s %s, API %s (%s)", name, "/".join(info.oses or (info.os,)),
                     info.arch, info.version, info.api_version, info.description)
        except EngineUnavailable as exc:
            found = connected.pop(name, None)
            if found is not None:
                found.close()
            down[name] = exc
            log.debug("engine %s: %s", name, exc.message)
    return connected, down


def targets_of(config: Config, engines: dict[str, FullEngine],
               down: dict[str, EngineUnavailable]) -> list[Target]:
    """Routing targets: what reachable engines report; what the file declares for the rest."""
    out = []
    for settings in config.engines:
        if settings.name in engines:
            info = engines[settings.name].info()
            oses = frozenset(info.oses or (info.os,))
        elif settings.name in down:
            oses = frozenset({settings.platform or "linux"})
        else:
            continue
        out.append(Target(name=settings.name, type=settings.type, oses=oses,
                          pins=settings.cells))
    return out
