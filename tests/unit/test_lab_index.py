"""lab/index_app.py: the lab's index mirror never redirects a container to the internet.

proxpi itself is not in the project's venv (it lives in the lab's own venv): a stand-in
``proxpi.server`` answers as proxpi does (a file, or a redirect after a failed download);
the upstream the wrapper then fetches from is a real HTTP server on loopback.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

LAB = Path(__file__).resolve().parents[2] / "lab"
WHEEL = b"PK\x03\x04 a wheel's bytes " * 1000

Answer = tuple[str, list[tuple[str, str]], list[bytes]]


class Upstream(BaseHTTPRequestHandler):
    flaky: ClassVar[list[int]] = []  # answered with a 503 once each, then as usual

    def do_GET(self) -> None:
        if self.path == "/flaky" and not Upstream.flaky:
            Upstream.flaky.append(503)
            self.send_error(503)
        elif self.path in ("/packages/demo-1.0-py3-none-any.whl", "/flaky"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(WHEEL)))
            self.end_headers()
            self.wfile.write(WHEEL)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def proxpi_answers(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Any]:
    """Load lab/index_app.py over a stand-in proxpi whose answer the test sets."""
    answer: dict[str, str] = {}

    def proxpi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if answer["status"].startswith("302"):
            start_response(answer["status"], [("Location", answer["body"])])
            return [b"redirecting"]
        start_response(answer["status"], [("Content-Type", "application/octet-stream")])
        return [answer["body"].encode()]

    server = types.ModuleType("proxpi.server")
    server.app = proxpi_app  # type: ignore[attr-defined]
    session = requests.Session()  # proxpi's: one for the index pages and the files
    server.cache = types.SimpleNamespace(  # type: ignore[attr-defined]
        root_cache=types.SimpleNamespace(session=session),
        file_cache=types.SimpleNamespace(session=session))
    monkeypatch.setitem(sys.modules, "proxpi", types.ModuleType("proxpi"))
    monkeypatch.setitem(sys.modules, "proxpi.server", server)
    spec = importlib.util.spec_from_file_location("index_app", LAB / "index_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def ask(status: str, body: str) -> Any:
        answer.update(status=status, body=body)
        return module

    return ask


def get(app: Any, path: str) -> Answer:
    said: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        said.update(status=status, headers=headers)

    body = list(app(
        {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_HOST": "172.17.0.1:5111"},
        start_response))
    return said["status"], said["headers"], body


def test_a_cached_file_is_passed_through_as_proxpi_serves_it(
        proxpi_answers: Callable[[str, str], Any]) -> None:
    app = proxpi_answers("200 OK", "cached bytes").app
    assert get(app, "/index/demo/demo-1.0-py3-none-any.whl") == (
        "200 OK", [("Content-Type", "application/octet-stream")], [b"cached bytes"])


def test_a_redirect_to_upstream_is_fetched_by_the_host_and_streamed(
        proxpi_answers: Callable[[str, str], Any], upstream: str) -> None:
    app = proxpi_answers("302 FOUND", f"{upstream}/packages/demo-1.0-py3-none-any.whl").app
    status, headers, body = get(app, "/index/demo/demo-1.0-py3-none-any.whl")
    assert status == "200 OK"
    assert not any(name.lower() == "location" for name, _ in headers)
    assert b"".join(body) == WHEEL


def test_an_upstream_that_fails_too_is_a_502_never_a_redirect(
        proxpi_answers: Callable[[str, str], Any], upstream: str) -> None:
    app = proxpi_answers("302 FOUND", f"{upstream}/packages/gone-1.0.tar.gz").app
    status, headers, body = get(app, "/index/gone/gone-1.0.tar.gz")
    assert status == "502 Bad Gateway"
    assert not any(name.lower() == "location" for name, _ in headers)
    said = b"".join(body)
    assert b"could not fetch" in said
    assert b"404" in said


def test_a_redirect_within_the_mirror_itself_is_left_alone(
        proxpi_answers: Callable[[str, str], Any]) -> None:
    # proxpi redirects /index/demo to /index/demo/ on its own host: not an upstream file.
    app = proxpi_answers("302 FOUND", "http://172.17.0.1:5111/index/demo/").app
    status, headers, _ = get(app, "/index/demo")
    assert status == "302 FOUND"
    assert headers == [("Location", "http://172.17.0.1:5111/index/demo/")]


def test_proxpis_own_requests_try_a_transient_upstream_error_again(
        proxpi_answers: Callable[[str, str], Any], upstream: str) -> None:
    proxpi_answers("200 OK", "")
    # the stand-in's session, as loading index_app configured it
    session: requests.Session = sys.modules["proxpi.server"].cache.file_cache.session
    Upstream.flaky.clear()
    response = session.get(f"{upstream}/flaky", timeout=10)
    assert Upstream.flaky == [503]  # it was answered 503 first
    assert response.status_code == 200
    assert response.content == WHEEL
