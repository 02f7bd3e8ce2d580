"""A real HTTP front for the lab registry that rate-limits the first N manifest requests.

The Docker engine pulls through it like through any registry; the first
``fail_first`` manifest requests get Docker Hub's 429 ``TOOMANYREQUESTS``
answer, later ones are forwarded to the real registry. Fault injection on
the wire, not a mock of Docker.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}


class _Handler(BaseHTTPRequestHandler):
    server: FlakyRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet

    def _forward(self) -> None:
        server = self.server
        if "/manifests/" in self.path and server.take_failure():
            body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message":
                                           "You have reached your pull rate limit."}]})
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body.encode())
            return
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream.request(self.command, self.path, body=payload, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward


class FlakyRegistry(ThreadingHTTPServer):
    """``with FlakyRegistry("127.0.0.1:5000", fail_first=1) as front: front.address``."""

    daemon_threads = True

    def __init__(self, upstream: str, *, fail_first: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.fail_first = fail_first
        self.failures = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def take_failure(self) -> bool:
        with self._lock:
            if self.failures < self.fail_first:
                self.failures += 1
                return True
            return False

    def __enter__(self) -> FlakyRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
