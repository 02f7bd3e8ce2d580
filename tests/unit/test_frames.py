"""Results framed on the output stream (Swarm): found across chunks, kept out of the log."""

from __future__ import annotations

import base64
import json
import random

import pytest

from orchestrator.engine.bootstrap import FRAME_BEGIN, FRAME_END
from orchestrator.engine.frames import FrameCatcher, FrameError


def framed(output: bytes, junit: bytes | None, code: int = 1) -> bytes:
    payload = {"interpreter": {"version": "3.12.1"}, "exit_code": code,
               "junit": base64.b64encode(junit).decode() if junit else None}
    text = base64.b64encode(json.dumps(payload).encode()).decode()
    lines = "".join(text[i:i + 76] + "\n" for i in range(0, len(text), 76))
    return output + f"\n{FRAME_BEGIN}\n{lines}{FRAME_END}\n".encode()


def test_frame_is_cut_out_at_any_chunking() -> None:
    junit = b"<testsuite>" + b"x" * 5000 + b"</testsuite>"
    wire = framed(b"test output\n\x1b[31mred\x1b[0m\n", junit)
    rng = random.Random(3)
    for _ in range(300):
        catcher = FrameCatcher(cap=1 << 20)
        out, pos = [], 0
        while pos < len(wire):
            step = rng.randint(1, 40)
            out.append(catcher.feed(wire[pos:pos + step]))
            pos += step
        out.append(catcher.flush())
        assert b"".join(out) == b"test output\n\x1b[31mred\x1b[0m\n"
        frame = catcher.frame()
        assert frame.junit == junit
        assert frame.exit_code == 1
        assert frame.interpreter == {"version": "3.12.1"}


def test_missing_damaged_and_oversized_frames() -> None:
    catcher = FrameCatcher(cap=1000)
    assert catcher.feed(b"no frame here\n") + catcher.flush() == b"no frame here\n"
    with pytest.raises(FrameError, match="no results frame"):
        catcher.frame()
    big = FrameCatcher(cap=100)
    big.feed(framed(b"", b"y" * 10_000))
    with pytest.raises(FrameError, match="over the 100-byte cap"):
        big.frame()
    damaged = FrameCatcher(cap=1000)
    damaged.feed(f"\n{FRAME_BEGIN}\n!!!!\n{FRAME_END}\n".encode())
    with pytest.raises(FrameError, match="damaged"):
        damaged.frame()


def test_the_last_frame_wins() -> None:
    catcher = FrameCatcher(cap=1 << 20)
    catcher.feed(framed(b"a test printed a fake frame:", b"<fake/>", 0))
    catcher.feed(framed(b"", b"<real/>", 1))
    assert catcher.frame().junit == b"<real/>"
