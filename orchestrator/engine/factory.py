"""Engines by name: the ``engines:`` settings -> connected Engine objects."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.tls
from docker.context import ContextAPI

from ..errors import EngineUnavailable
from ..settings import EngineSettings, EngineType
from . import FullEngine
from .dockerapi import Endpoint


def _tls(setting: bool | dict[str, Any]) -> Any:
    if setting is False:
        return None
    if setting is True:
        # Docker's convention: certificates in DOCKER_CERT_PATH, else the system's CAs
        cert_path = os.environ.get("DOCKER_CERT_PATH")
        if cert_path:
            folder = Path(cert_path)
            return docker.tls.TLSConfig(
                client_cert=(str(folder / "cert.pem"), str(folder / "key.pem")),
                ca_cert=str(folder / "ca.pem"), verify=True)
        return docker.tls.TLSConfig(verify=True)
    client = (setting["client_cert"], setting["client_key"]) \
        if setting.get("client_cert") and setting.get("client_key") else None
    return docker.tls.TLSConfig(client_cert=client, ca_cert=setting.get("ca_cert"),
                                verify=setting.get("verify", True))


def endpoint_for(settings: EngineSettings) -> Endpoint:
    """Where an engine is: a Docker CLI context, a URL with TLS, or the environment."""
    if settings.context:
        context = ContextAPI.get_context(settings.context)
        if context is None:
            raise EngineUnavailable(f"engine {settings.name}: no Docker context "
                                    f"{settings.context!r}", hint="see `docker context ls`")
        return Endpoint(base_url=context.Host, tls=context.TLSConfig or None)
    if settings.base_url:
        return Endpoint(base_url=settings.base_url, tls=_tls(settings.tls))
    return Endpoint()


# Minimum engine API versions: attach before start and the `local` log driver
# (Docker 19.03, API 1.40); replicated-job services (Docker 20.10, API 1.41).
MINIMUM_API = {EngineType.DOCKER: (1, 40), EngineType.SWARM: (1, 41)}


def _docker(settings: EngineSettings, endpoint: Endpoint, workers: int,
            pull: str) -> FullEngine:
    from .docker import DockerEngine

    return DockerEngine(settings.name, endpoint=endpoint, workers=workers, pull=pull)


def _swarm(settings: EngineSettings, endpoint: Endpoint, workers: int,
           pull: str) -> FullEngine:
    from .swarm import SwarmEngine

    return SwarmEngine(settings.name, endpoint=endpoint, registry=settings.registry or "",
                       workers=workers, pull=pull)


# The engine types, by name; each imports the Docker SDK only when it is used.
ENGINES: dict[EngineType, Callable[[EngineSettings, Endpoint, int, str], FullEngine]] = {
    EngineType.DOCKER: _docker,
    EngineType.SWARM: _swarm,
}


def connect(settings: EngineSettings, *, workers: int, pull: str) -> FullEngine:
    """A connected engine of the configured type; EngineUnavailable if it does not answer
    or is too old for what tagmatrix asks of it."""
    engine = ENGINES[settings.type](settings, endpoint_for(settings), workers, pull)
    info = engine.info()
    minimum = MINIMUM_API[settings.type]
    found = tuple(int(p) for p in info.api_version.split(".")[:2] if p.isdigit())
    if found and found < minimum:
        engine.close()
        raise EngineUnavailable(
            f"engine {settings.name} speaks Docker API {info.api_version} ({info.version}); "
            f"tagmatrix needs {minimum[0]}.{minimum[1]} or newer for a {settings.type} engine",
            hint="upgrade the engine (Docker 20.10 or newer)")
    return engine
