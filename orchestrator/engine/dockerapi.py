"""docker-py at one boundary: clients, error translation, abortable streams.

Every ``docker.errors.*`` and ``requests`` exception raised inside the engine
becomes one of our errors here (compare docker-py's own
``create_api_error_from_http_exception``): a cell-level :class:`CellError`
(retryable when transient) or :class:`EngineUnavailable` when the engine is
gone. Long streams (build output, logs, pulls) get their own client so that a
deadline or a cancellation can shut their socket without touching the pool
that other threads share.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests
import urllib3
from docker.context import ContextAPI
from docker.types import CancellableStream
from docker.utils import kwargs_from_env

from ..errors import CellError, EngineUnavailable, ImageNotFound, Stage

log = logging.getLogger(__name__)

_TRANSIENT = ("toomanyrequests", "too many requests", "429", "connection reset",
              "i/o timeout", "tls handshake timeout", "service unavailable", "502", "503", "504")


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """How to reach one engine: the environment's, or an explicit URL with TLS."""

    base_url: str | None = None  # None: DOCKER_HOST / the active context / the default socket
    tls: Any = None  # docker.tls.TLSConfig, or True for TLS with system CAs

    def describe(self) -> str:
        return self.base_url or "the environment's Docker engine (DOCKER_HOST or default socket)"


def is_transient(text: str) -> bool:
    """Registry rate limits and passing network faults: worth a retry."""
    low = text.lower()
    return any(marker in low for marker in _TRANSIENT)


def client_params(endpoint: Endpoint) -> dict[str, Any]:
    """base_url and tls as ``docker.from_env`` would resolve them: DOCKER_HOST and
    DOCKER_TLS_VERIFY, else the active CLI context, else the default socket."""
    if endpoint.base_url is not None:
        return {"base_url": endpoint.base_url, "tls": endpoint.tls}
    params: dict[str, Any] = dict(kwargs_from_env())
    from_context = getattr(ContextAPI, "kwargs_from_context", None)  # docker >= 7.2
    if "base_url" not in params and from_context is not None:
        for key, value in from_context().items():
            params.setdefault(key, value)
    return params


def connect(endpoint: Endpoint, *, pool_size: int) -> tuple[docker.DockerClient,
                                                            dict[str, Any]]:
    """A client whose pool fits the workers, and the parameters that reached it;
    EngineUnavailable when nothing answers."""
    try:
        params = client_params(endpoint)
        client = docker.DockerClient(**params, max_pool_size=pool_size)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(
            f"cannot reach the Docker engine ({endpoint.describe()}): {_short(exc)}",
            hint="start the engine (or run `make lab`), or set DOCKER_HOST to a running one",
        ) from exc
    return client, params


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


class Streams:
    """Dedicated API clients for long streams, abortable from any thread."""

    def __init__(self, params: dict[str, Any], version: str) -> None:
        self._params = params
        self._version = version
        self._lock = threading.Lock()
        self._open: dict[int, tuple[docker.APIClient, list[requests.Response]]] = {}
        self._next = 0

    @contextmanager
    def client(self) -> Iterator[tuple[docker.APIClient, Callable[[], None]]]:
        """A fresh client and an ``abort()`` that ends its streams at once."""
        api = docker.APIClient(**self._params, version=self._version, max_pool_size=1)
        responses: list[requests.Response] = []

        def keep(response: requests.Response, *_: Any, **__: Any) -> None:
            responses.append(response)

        api.hooks["response"].append(keep)
        with self._lock:
            key = self._next
            self._next += 1
            self._open[key] = (api, responses)

        def abort() -> None:
            _shutdown(responses)

        try:
            yield api, abort
        finally:
            with self._lock:
                self._open.pop(key, None)
            api.close()

    def abort_all(self) -> None:
        """End every open stream (cancellation)."""
        with self._lock:
            opened = list(self._open.values())
        for _, responses in opened:
            _shutdown(responses)


def _shutdown(responses: list[requests.Response]) -> None:
    for response in list(responses):
        # shutdown() wakes a thread blocked in recv(); close() alone does not.
        try:
            CancellableStream(iter(()), response).close()
        except Exception as exc:  # noqa: BLE001 - best effort on a dying socket
            log.debug("abort stream: %s", exc)


class Translator:
    """Maps SDK failures to our errors; checks whether the engine is still there."""

    def __init__(self, api: docker.APIClient, describe: str) -> None:
        self.api = api
        self.describe = describe

    def alive(self) -> bool:
        try:
            self.api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        return True

    def lost(self, exc: BaseException) -> EngineUnavailable:
        return EngineUnavailable(f"lost the Docker engine ({self.describe}): {_short(exc)}",
                                 hint="check that the engine is running, then rerun")

    @contextmanager
    def errors(self, stage: Stage, what: str) -> Iterator[None]:
        """Translate anything docker-py or requests raises while doing ``what``."""
        try:
            yield
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(f"{what}: {_explain(exc)}", stage=stage) from exc
        except docker.errors.NotFound as exc:
            raise CellError(f"{what}: {_explain(exc)}", stage=stage) from exc
        except docker.errors.APIError as exc:
            text = _explain(exc)
            if exc.status_code == 429:
                text = f"registry rate limit: {text}"
            raise CellError(f"{what}: {text}", stage=stage,
                            retryable=exc.status_code == 429 or is_transient(text)) from exc
        except (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError,
                http.client.HTTPException, ConnectionError) as exc:
            # a cut stream surfaces from urllib3 or http.client, not always as requests'
            if not self.alive():
                raise self.lost(exc) from exc
            raise CellError(f"{what}: connection to the engine failed: {_short(exc)}",
                            stage=stage, retryable=True) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise CellError(f"{what}: {_short(exc)}", stage=stage) from exc


def inspect_image(api: docker.APIClient, reference: str) -> dict[str, Any]:
    """``api.inspect_image`` (untyped in the stubs)."""
    data: dict[str, Any] = api.inspect_image(reference)  # type: ignore[no-untyped-call]
    return data


def inspect_if_present(api: docker.APIClient, errors: Translator, stage: Stage,
                       reference: str) -> dict[str, Any] | None:
    """The image's inspect data, None when the engine has no such image (as a 404, or
    as an error that says so); other failures raise as ``errors`` translates them."""
    try:
        with errors.errors(stage, f"inspect {reference}"):
            return inspect_image(api, reference)
    except ImageNotFound:
        return None
    except CellError as exc:
        if "No such image" in str(exc):
            return None
        raise


def _explain(exc: docker.errors.APIError) -> str:
    return (exc.explanation or str(exc)).strip() if isinstance(exc.explanation, str) \
        else str(exc)
