"""The lab's package index mirror: proxpi, which never sends a container to the internet.

proxpi answers a file it has not cached yet with a redirect to the file's upstream
address when its own download fails or outlasts PROXPI_DOWNLOAD_TIMEOUT, by design
(EpicWink/proxpi#65); after an HTTP error from upstream it keeps redirecting for that
file until it restarts (proxpi 1.3.1, _FileCache._wait_for_existing_download). It also
"fails" when two cells ask for the same uncached file at once: _start_downloading
stores the download thread before starting it, and the second request's join raises
"cannot join thread before it is started" (seen twice in one CI run, for
packaging-26.4 and urllib3-2.8.0). Containers cannot reach files.pythonhosted.org, so
either failed a cell's install in CI ("Failed to establish a secure connection").
This wrapper fetches such a file from the host instead, retrying transient errors,
and streams it; when that fails too it answers 502, which pip and uv retry.

Served by gunicorn as ``index_app:app`` (lab/index.sh), beside proxpi in its venv.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests
from proxpi.server import app as proxpi_app
from proxpi.server import cache as proxpi_cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger("proxpi.lab")  # proxpi configures the "proxpi" loggers

StartResponse = Callable[..., Any]
_CHUNK = 64 * 1024
# A dropped connection, a 429 or a 5xx from pypi.org is tried again (after 0, 2, 4 ...
# s); the last answer is returned as it is, for its caller to judge.
_RETRY = Retry(total=6, backoff_factor=1, status_forcelist=(429, 500, 502, 503, 504),
               allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)


def _retrying(session: requests.Session) -> requests.Session:
    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(max_retries=_RETRY))
    return session


_session = _retrying(requests.Session())
# proxpi's own requests (project pages, its downloads into the cache) retry too, so
# that a transient error is rarely left for the redirect path below to mend
# (proxpi 1.3.1 shares one session between them: mounting again only replaces the adapter)
for _proxpi_session in (proxpi_cache.root_cache.session, proxpi_cache.file_cache.session):
    _retrying(_proxpi_session)


def _upstream(status: str, headers: list[tuple[str, str]], host: str) -> str | None:
    """The address a proxpi redirect points to when it leaves this machine, else None."""
    if not status.startswith(("301", "302", "303", "307", "308")):
        return None
    location = next((value for name, value in headers if name.lower() == "location"), "")
    target = urllib.parse.urlsplit(location)
    return location if target.scheme in ("http", "https") and target.netloc != host else None


def _stream(response: requests.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=_CHUNK)
    finally:
        response.close()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.update(status=status, headers=headers, exc_info=exc_info)
        return lambda data: None  # proxpi (Flask) never writes through this callable

    body = proxpi_app(environ, capture)
    location = _upstream(captured["status"], captured["headers"], environ.get("HTTP_HOST", ""))
    if location is None:
        start_response(captured["status"], captured["headers"], captured["exc_info"])
        return body
    if hasattr(body, "close"):
        body.close()
    try:
        response = _session.get(location, stream=True, timeout=(10, 120))
        response.raise_for_status()
    except requests.RequestException as error:
        logger.warning("index mirror: could not fetch %s for a container: %s", location, error)
        start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
        return [f"the lab's index mirror could not fetch {location}: {error}\n".encode()]
    logger.warning("index mirror: proxpi redirected to %s; served it from the host", location)
    # No Content-Length: iter_content undoes a Content-Encoding, so it might not match.
    start_response("200 OK", [("Content-Type", response.headers.get(
        "Content-Type", "application/octet-stream"))])
    return _stream(response)
