"""A small client for the OCI distribution (Docker Registry v2) API (in the engine layer:
it reads the Docker CLI's credentials through docker-py, and speaks HTTP).

Used where tagmatrix must ask a registry without pulling: the list of tags
(`tagmatrix tags --refresh`) and a tag's digest (`tagmatrix lock`). Bearer
token auth is negotiated from the ``WWW-Authenticate`` challenge (Docker Hub,
GHCR, ...), with credentials from the Docker CLI config when there are any.
Loopback registries are spoken to over plain HTTP, as the Docker engine
itself does for 127.0.0.0/8.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import requests

from ..errors import RegistryError

log = logging.getLogger(__name__)

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])
_LOOPBACK = re.compile(r"^(?:localhost|127\.\d+\.\d+\.\d+|\[::1\])(?::\d+)?$")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT = 20.0
MAX_PAGES = 200


@dataclass(frozen=True)
class Registry:
    """One registry host, e.g. ``docker.io`` or ``127.0.0.1:5000``."""

    host: str

    @property
    def api_base(self) -> str:
        host = "registry-1.docker.io" if self.host in ("docker.io", "index.docker.io") \
            else self.host
        scheme = "http" if _LOOPBACK.match(host) else "https"
        return f"{scheme}://{host}/v2"

    def _credentials(self) -> tuple[str, str] | None:
        try:
            from docker import auth

            config = auth.load_config()
            found = auth.resolve_authconfig(config, self.host) or {}
        except Exception as exc:  # noqa: BLE001 - no usable config means anonymous
            log.debug("no registry credentials for %s: %s", self.host, exc)
            return None
        if found.get("username") and found.get("password"):
            return str(found["username"]), str(found["password"])
        return None

    def _token(self, challenge: str, session: requests.Session) -> str:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryError(f"{self.host}: authentication required ({challenge})")
        response = session.get(realm, params=params, auth=self._credentials(), timeout=TIMEOUT)
        if response.status_code != 200:
            raise RegistryError(f"{self.host}: token request refused "
                                f"(HTTP {response.status_code})", status=response.status_code)
        body: dict[str, Any] = response.json()
        return str(body.get("token") or body.get("access_token") or "")

    def _request(self, method: str, url: str, session: requests.Session,
                 headers: dict[str, str] | None = None) -> requests.Response:
        headers = dict(headers or {})
        try:
            response = session.request(method, url, headers=headers, timeout=TIMEOUT)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and challenge.lower().startswith("bearer"):
                headers["Authorization"] = f"Bearer {self._token(challenge, session)}"
                response = session.request(method, url, headers=headers, timeout=TIMEOUT)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"cannot reach the registry {self.host}: {exc}",
                                hint="check the registry address (image.registry) and the "
                                     "network", retryable=True) from exc
        if response.status_code == 429:
            raise RegistryError(f"{self.host}: rate limited (HTTP 429 toomanyrequests)",
                                status=429, retryable=True,
                                hint="log in (docker login) or use a mirror")
        return response

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following pagination."""
        tags: list[str] = []
        url: str | None = f"{self.api_base}/{repository}/tags/list?n=1000"
        with requests.Session() as session:
            for _ in range(MAX_PAGES):
                if url is None:
                    break
                response = self._request("GET", url, session)
                if response.status_code == 404:
                    raise RegistryError(f"{self.host}/{repository}: no such repository",
                                        status=404)
                if response.status_code != 200:
                    raise RegistryError(f"{self.host}/{repository}: tags/list answered HTTP "
                                        f"{response.status_code}", status=response.status_code)
                tags.extend(response.json().get("tags") or [])
                url = _next_page(response, self.api_base)
        return tags

    def digest(self, repository: str, tag: str) -> str | None:
        """The digest ``repository:tag`` points at, or None if there is no such tag."""
        url = f"{self.api_base}/{repository}/manifests/{tag}"
        with requests.Session() as session:
            response = self._request("HEAD", url, session, {"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(f"{self.host}/{repository}:{tag}: manifest HEAD answered HTTP "
                                f"{response.status_code}", status=response.status_code)
        digest = response.headers.get("Docker-Content-Digest", "")
        if not digest.startswith("sha256:"):
            raise RegistryError(f"{self.host}/{repository}:{tag}: no digest in the answer")
        return digest


def _next_page(response: requests.Response, api_base: str) -> str | None:
    link = response.headers.get("Link", "")
    match = re.search(r'<([^>]+)>;\s*rel="?next"?', link)
    if not match:
        return None
    target = match.group(1)
    if target.startswith("http"):
        return target
    root = api_base[: -len("/v2")]
    return f"{root}{target}"
