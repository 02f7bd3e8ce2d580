"""Results carried on the output stream, for engines without file copy-out (Swarm).

In frame mode the bootstrap runs the tests as a child, then prints one frame
after all their output:

    @@tagmatrix-frame-begin@@
    <base64 of {"interpreter": {...}, "exit_code": N, "junit": <base64 or null>,
                "packages": {...}, "warnings": <base64, when the ledger ran>}>,
    76 characters a line
    @@tagmatrix-frame-end@@

:class:`FrameCatcher` sits between the output stream and the cell log: it
passes everything else through, keeps the frame out of the log, and decodes
it. Markers split across chunks are found; a frame larger than the cap is an
error, not unbounded memory; if the tests themselves print the begin marker,
the last frame wins.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from .bootstrap import FRAME_BEGIN, FRAME_END

BEGIN = f"\n{FRAME_BEGIN}\n".encode()
END = f"{FRAME_END}\n".encode()


class FrameError(ValueError):
    """The frame is missing, cut short, too large or not ours."""


@dataclass(frozen=True)
class Frame:
    interpreter: dict[str, Any]
    exit_code: int | None
    junit: bytes | None
    packages: Any = None  # the bootstrap's packages record, as sent (untrusted)
    warnings: bytes | None = None  # the warnings ledger's file, as sent (untrusted)


class FrameCatcher:
    """Output in, output without the frame out; the frame decoded on demand."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._carry = b""  # a possible start of a marker, held back
        self._inside = False
        self._frame = bytearray()
        self._complete: bytes | None = None
        self.too_large = False

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        self._carry = b""
        out = bytearray()
        while data:
            if not self._inside:
                at = data.find(BEGIN)
                if at < 0:
                    keep = _partial_suffix(data, BEGIN)
                    out += data[:len(data) - keep]
                    self._carry = data[len(data) - keep:]
                    break
                out += data[:at]
                data = data[at + len(BEGIN):]
                self._inside, self._frame = True, bytearray()
                continue
            at = data.find(END)
            if at < 0:
                keep = _partial_suffix(data, END)
                self._take(data[:len(data) - keep])
                self._carry = data[len(data) - keep:]
                break
            self._take(data[:at])
            data = data[at + len(END):]
            self._inside = False
            self._complete = bytes(self._frame)
            self._frame = bytearray()
        return bytes(out)

    def _take(self, data: bytes) -> None:
        if len(self._frame) + len(data) > self.cap:
            self.too_large = True
            return
        self._frame += data

    def flush(self) -> bytes:
        """At the end of the stream: what was held back that is not a frame."""
        rest, self._carry = self._carry, b""
        return b"" if self._inside else rest

    @property
    def complete(self) -> bool:
        return self._complete is not None

    def frame(self) -> Frame:
        if self.too_large:
            raise FrameError(f"the results frame is over the {self.cap}-byte cap")
        if self._complete is None:
            raise FrameError("no results frame in the output (the container ended early?)")
        try:
            payload = json.loads(base64.b64decode(b"".join(self._complete.split())))
            junit = payload.get("junit")
            warnings = payload.get("warnings")
            return Frame(interpreter=dict(payload.get("interpreter") or {}),
                         exit_code=payload.get("exit_code"),
                         junit=base64.b64decode(junit) if junit else None,
                         packages=payload.get("packages"),
                         warnings=base64.b64decode(warnings) if warnings else None)
        except (ValueError, binascii.Error, TypeError, AttributeError) as exc:
            raise FrameError(f"the results frame is damaged: {exc}") from exc


def _partial_suffix(data: bytes, marker: bytes) -> int:
    """How many trailing bytes of ``data`` could begin ``marker``."""
    for size in range(min(len(marker) - 1, len(data)), 0, -1):
        if marker.startswith(data[-size:]):
            return size
    return 0
