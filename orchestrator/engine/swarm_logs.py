"""A Swarm service's output, followed on its own client so that it can be cut."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class ServiceLogs(threading.Thread):
    """Follows a service's logs into a sink, on its own client (so it can be cut)."""

    def __init__(self, engine: Any, sid: str, sink: Callable[[bytes], None]) -> None:
        super().__init__(name=f"service-logs-{sid[:12]}", daemon=True)
        self.streams = engine.streams
        self.sid = sid
        self.sink = sink
        self.seen = 0
        self._abort: Callable[[], None] | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        try:
            with self.streams.client() as (api, abort):
                self._abort = abort
                self._ready.set()
                for chunk in api.service_logs(self.sid, stdout=True, stderr=True, follow=True):
                    self.seen += len(chunk)
                    self.sink(chunk)
        except Exception as exc:  # noqa: BLE001 - a cut stream is expected after abort()
            log.debug("service logs of %s ended: %s", self.sid[:12], exc)
        finally:
            self._ready.set()

    def drain(self, done: Callable[[], bool], stall: float = 5.0, limit: float = 120.0) -> None:
        """Until the frame has arrived, the stream stalls for ``stall`` s, or ``limit``."""
        deadline = time.monotonic() + limit
        seen, still = self.seen, time.monotonic()
        while self.is_alive() and not done() and time.monotonic() < deadline:
            self.join(0.1)
            if self.seen != seen:
                seen, still = self.seen, time.monotonic()
            elif time.monotonic() - still >= stall:
                break

    def cut(self) -> None:
        if self.is_alive():
            self._ready.wait(1)
            if self._abort is not None:
                self._abort()
            self.join(2)
