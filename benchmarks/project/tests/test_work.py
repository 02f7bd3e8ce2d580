"""A test suite that takes a few seconds: half computing, half waiting (like tests
that do I/O). MATRIX_LOAD (the matrix's `load` axis) sets how long."""

import hashlib
import os
import time

import pytest

SECONDS = {"small": 1.5, "medium": 3.0, "large": 4.5}[os.environ.get("MATRIX_LOAD", "small")]
PARTS = 6


def work(seconds: float) -> bytes:
    end = time.monotonic() + seconds / 2
    digest = b"tagmatrix"
    while time.monotonic() < end:
        digest = hashlib.sha256(digest).digest()
    time.sleep(seconds / 2)
    return digest


@pytest.mark.parametrize("part", range(PARTS))
def test_part(part: int) -> None:
    assert len(work(SECONDS / PARTS)) == 32
