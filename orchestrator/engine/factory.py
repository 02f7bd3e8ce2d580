"""Engines by name: the ``engines:`` settings -> connected Engine objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import docker.tls
from docker.context import ContextAPI

from ..errors import EngineUnavailable
from ..settings import EngineSettings
from . import Engine
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


def connect(settings: EngineSettings, *, workers: int, pull: str) -> Engine:
    """A connected engine of the configured type; EngineUnavailable if it does not answer."""
    endpoint = endpoint_for(settings)
    if settings.type == "swarm":
        from .swarm import SwarmEngine

        return SwarmEngine(settings.name, endpoint=endpoint, registry=settings.registry or "",
                           workers=workers, pull=pull)
    from .docker import DockerEngine

    return DockerEngine(settings.name, endpoint=endpoint, workers=workers, pull=pull)
