"""The reports folder: checked before anything is written, locked for one run, written
without ever following a link.

A test (through a bind mount) or a checkout (committed files) may plant symbolic
links where tagmatrix writes; a second run may share the folder; a user may point
``--reports`` at ``/`` or at the project itself. So:

- the folder must be absent, empty, or tagmatrix's own (it holds results.json or
  tagmatrix's marker); never a system folder, never the project root itself;
- it, ``cells/`` and ``logs/`` must be real folders, not links (created if missing);
- every file is created with ``O_NOFOLLOW`` (or replaced by rename, which replaces
  a link instead of following it); a link in our way is refused, naming it;
- one run holds the folder's lock (``flock``) from start to end; a second run
  stops at once naming the first, or waits with ``--wait``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .files import kernel_path

MARKER = ".tagmatrix-reports"
LOCK = ".tagmatrix.lock"
SYSTEM = {Path(p) for p in ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64",
                             "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys",
                             "/tmp", "/usr", "/var")}  # noqa: S108 - refused, not used
GITIGNORE = ".gitignore"  # "*": a reports folder inside a checkout is not committed by accident
# What a folder may hold before tagmatrix first writes there: git's placeholders (a
# checkout's empty reports/ holds a .gitkeep) and what this repository's benchmarks
# write into reports/ (make bench before make demo on a fresh clone)
PLACEHOLDERS = {".gitkeep", ".keep", GITIGNORE, "bench.json", "libraries.json",
                "history-bench.json"}
OURS = {"results.json", "tagmatrix.log", MARKER, LOCK, GITIGNORE, "junit.xml", "summary.md",
        "index.html",
        "cells", "logs", "bench.json", "libraries.json", "history-bench.json"}


def _kind(path: Path) -> str:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "absent"
    if stat.S_ISLNK(info.st_mode):
        return "link"
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    return "file"


def real_folder(path: Path, what: str) -> None:
    """``path`` exists as a folder that is not a symbolic link (created if absent)."""
    kind = _kind(path)
    if kind == "absent":
        try:
            path.mkdir()
        except FileExistsError:
            kind = _kind(path)
        except OSError as exc:
            raise UsageError(f"{what} {path}: cannot create it ({exc.strerror})") from exc
        else:
            return
    if kind == "link":
        raise UsageError(f"{what} {path} is a symbolic link; tagmatrix does not write "
                         "through links", hint="remove the link, or pass the real folder")
    if kind == "file":
        raise UsageError(f"{what} {path} is a file, not a folder",
                         hint="remove it, or choose another --reports folder")


class ReportsFolder:
    """A run's output folder, checked and locked (see the module docstring)."""

    def __init__(self, path: Path, *, project: Path | None = None) -> None:
        self.path = path
        # normalised but not resolved: a link in the path is the user's to choose, a link
        # in the folder's contents is refused below
        absolute = Path(os.path.abspath(path))  # noqa: PTH100
        if absolute in SYSTEM or absolute.parent == absolute or kernel_path(absolute):
            raise UsageError(f"--reports {path}: refusing to write reports into a system "
                             "folder", hint="use a folder of its own, e.g. ./reports")
        if project is not None and absolute == Path(os.path.abspath(project)):  # noqa: PTH100
            raise UsageError(f"--reports {path} is the project folder itself: its files "
                             "(an index.html ...) would be overwritten",
                             hint="use a subfolder, e.g. ./reports")
        parent = absolute.parent
        if _kind(parent) == "absent":  # --reports out/reports: made as `mkdir -p` would
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"--reports {path}: cannot create {parent} "
                                 f"({exc.strerror})") from exc
        if _kind(parent) != "folder":
            raise UsageError(f"--reports {path}: its parent {parent} is not a folder "
                             "(or is a link)")
        real_folder(absolute, "--reports")
        found = {p.name for p in absolute.iterdir()} - PLACEHOLDERS
        if found and not found & {"results.json", MARKER}:
            strangers = ", ".join(sorted(found - OURS)[:5]) or ", ".join(sorted(found)[:5])
            raise UsageError(f"--reports {path} holds files tagmatrix did not write "
                             f"({strangers})", hint="choose an empty or new folder")
        self.absolute = absolute
        self._lock_fd: int | None = None

    def prepare(self) -> None:
        """Subfolders and the marker; call with the lock held."""
        for name in ("cells", "logs"):
            real_folder(self.absolute / name, "reports folder")
        self.create(self.absolute / MARKER).close()
        if _kind(self.absolute / GITIGNORE) == "absent":  # yours, if you wrote one
            with self.create(self.absolute / GITIGNORE) as handle:
                handle.write(b"# tagmatrix's reports are not part of the project\n*\n")

    def writable(self) -> None:
        """A clear error now rather than a traceback after the run."""
        if not os.access(self.absolute, os.W_OK | os.X_OK):
            raise UsageError(f"--reports {self.path}: not writable by this user")

    def lock(self, run_id: str, *, wait: bool = False) -> None:
        """Hold the folder for this run (released by :meth:`unlock` or at exit)."""
        path = self.absolute / LOCK
        fd = _open_nofollow(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise UsageError(f"--reports {self.path} is in use by another run ({holder})",
                             hint="wait for it, use another --reports folder, or add "
                                  "--wait") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"run": run_id, "pid": os.getpid(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                                 }).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def create(self, path: Path) -> os.FileHandle:  # type: ignore[name-defined]
        """A new or truncated file under the folder, never through a link."""
        return os.fdopen(_open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb")

    def remove_stale(self, keep: Iterable[str]) -> list[str]:
        """Delete cells/<id>.xml and logs/<id>.log of cells not in ``keep`` (a narrowed
        run writes only its cells); links are unlinked, never followed."""
        wanted = set(keep)
        removed = []
        for folder, suffix in (("cells", ".xml"), ("logs", ".log")):
            base = self.absolute / folder
            if _kind(base) != "folder":
                continue
            for entry in base.iterdir():
                name = entry.name
                if not name.endswith(suffix) or name.startswith("_") or \
                        _kind(entry) == "folder":
                    continue
                if name[: -len(suffix)] not in wanted:
                    entry.unlink()
                    removed.append(f"{folder}/{name}")
        return removed


def _open_nofollow(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symbolic link; tagmatrix does not write through "
                             "links", hint="remove the link") from exc
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"run {data.get('run', '?')}, pid {data.get('pid', '?')}, " \
               f"since {data.get('since', '?')}"
    except (OSError, ValueError, AttributeError):
        return "run unknown"
