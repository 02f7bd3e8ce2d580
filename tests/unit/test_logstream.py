"""Docker's multiplexed frames, cut out of arbitrary read boundaries."""

from __future__ import annotations

import random
import struct

from orchestrator.engine.logstream import Demuxer


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_split_at_every_possible_boundary() -> None:
    payloads = [b"line one\n", b"", b"\x1b[31mred\x1b[0m\n", b"x" * 70_000, b"tail"]
    wire = b"".join(frame(1 + i % 2, p) for i, p in enumerate(payloads))
    rng = random.Random(7)
    for _ in range(200):
        demuxer = Demuxer()
        out, pos = [], 0
        while pos < len(wire):
            step = rng.randint(1, 9000)
            out.append(demuxer.feed(wire[pos:pos + step]))
            pos += step
        assert b"".join(out) == b"".join(payloads)
        assert demuxer.leftover == 0


def test_a_cut_frame_is_kept_back_and_counted() -> None:
    demuxer = Demuxer()
    wire = frame(1, b"complete") + frame(2, b"cut short")
    assert demuxer.feed(wire[:-3]) == b"complete"
    assert demuxer.leftover == len(frame(2, b"cut short")) - 3

