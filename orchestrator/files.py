"""Write report files atomically: a temporary file in the same folder, then rename.

A crash or a kill never leaves half a junit.xml: readers see the old file or
the new one (compare pypa/build's ``_write_report``). The rename replaces a
symbolic link at the destination instead of following it, and the file gets the
permissions the umask allows (mkstemp's 0600 would hide reports from CI artifact
uploaders and web servers running as another user).
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any


@functools.cache
def umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        found = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(),
                          re.MULTILINE)
    except OSError:
        found = None
    if found:
        return int(found[1], 8)
    current = os.umask(0o022)  # no /proc: read it by setting it (once, at first use)
    os.umask(current)
    return current


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


KERNEL_ROOTS = ("/proc", "/sys", "/dev")  # kernel interfaces, not files to read or write


def kernel_path(path: Path) -> str | None:
    """The kernel file system (/proc, /sys, /dev) ``path`` resolves into, if any: their
    "regular files" may block on read (/proc/kmsg) or act when written to."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a link loop: not ours to follow either
        return None
    return next((r for r in KERNEL_ROOTS if resolved.is_relative_to(r)), None)


def read_capped(path: Path, limit: int) -> bytes:
    """A regular file's bytes, read back from a reports folder (untrusted: a test or a
    commit may have planted it): never through a link, never more than ``limit`` bytes.
    OSError (FileNotFoundError when absent) or ValueError says why not."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is {info.st_size} bytes, over the cap of {limit}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is over the cap of {limit} bytes")
    return data
