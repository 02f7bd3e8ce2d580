"""The project folder, walked by file descriptors so that no link is ever followed.

A path like ``root/d/name`` is resolved by the kernel at each use: if ``d`` is swapped
for a link to a host folder between two calls (a concurrent writer), ``lstat`` and
``open`` on that path follow it. So each folder is opened from its parent's descriptor
with ``O_NOFOLLOW`` (one component at a time, from the root), and checked against the
device and inode its parent listed; each file is opened the same way and its
``fstat`` must match what the listing saw. A mismatch means the project changed while
tagmatrix read it, and the build fails saying so: a snapshot is of one state of the
folder or of none.

Which paths are listed follows docker-py's ``PatternMatcher.walk`` (see
engine/ignore.py), then drops tagmatrix's own output, which nothing brings back.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .ignore import Matcher

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file must not block the open (a no-op on files)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
OPEN_FOLDERS = 32  # descriptors of folders kept open besides the root (bounds fd use)


class ProjectChanged(Exception):
    """A path is not what the walk listed (replaced, removed, swapped for a link)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Kind(enum.Enum):
    FILE = "file"
    FOLDER = "folder"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of the context as the walk found it (``name``: relative, "/"-separated)."""

    name: str
    kind: Kind
    mode: int
    uid: int
    gid: int
    size: int  # bytes of a file; 0 otherwise
    mtime: float
    device: int
    inode: int
    link: str = ""  # a link's target, read once: the link is kept, never followed

    @classmethod
    def of(cls, name: str, info: os.stat_result, kind: Kind, link: str = "") -> Entry:
        return cls(name=name, kind=kind, mode=info.st_mode, uid=info.st_uid, gid=info.st_gid,
                   size=info.st_size if kind is Kind.FILE else 0, mtime=info.st_mtime,
                   device=info.st_dev, inode=info.st_ino, link=link)


def _kind(mode: int) -> Kind | None:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.FOLDER
    if stat.S_ISLNK(mode):
        return Kind.LINK
    return None  # sockets, FIFOs, devices: nothing a build needs, some are hazards


def _parent(name: str) -> str:
    return name.rpartition("/")[0]


class Folders:
    """The project's folders as open descriptors, each reached from the root with
    O_NOFOLLOW and checked against the (device, inode) listed for it; the root and the
    most recently used OPEN_FOLDERS others stay open until :meth:`release`."""

    def __init__(self, root: Path) -> None:
        try:
            self._root = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            raise _failure(exc, ".") from exc
        info = os.fstat(self._root)
        self._ids: dict[str, tuple[int, int]] = {"": (info.st_dev, info.st_ino)}
        self._open: OrderedDict[str, int] = OrderedDict()

    def expect(self, folder: str, device: int, inode: int) -> None:
        """What ``folder`` must be when it is opened (as its parent's listing saw it)."""
        self._ids[folder] = (device, inode)

    def fd(self, folder: str) -> int:
        """An open descriptor of ``folder`` ("" is the root, open for the whole walk)."""
        if not folder:
            return self._root
        found = self._open.get(folder)
        if found is not None:
            self._open.move_to_end(folder)
            return found
        # from the deepest ancestor still open, one component at a time (a loop, not a
        # recursion: a tree deeper than Python's recursion limit is walked too)
        parts = folder.split("/")
        depth = len(parts) - 1
        while depth and "/".join(parts[:depth]) not in self._open:
            depth -= 1
        fd = self._open["/".join(parts[:depth])] if depth else self._root
        for end in range(depth + 1, len(parts) + 1):
            fd = self._open_below(fd, "/".join(parts[:end]))
        return fd

    def _open_below(self, parent: int, folder: str) -> int:
        try:
            fd = os.open(folder.rpartition("/")[2], _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:  # ELOOP: now a link; ENOTDIR, ENOENT: replaced or removed
            raise _failure(exc, folder) from exc
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self._ids.get(folder):
            os.close(fd)
            raise ProjectChanged(folder)
        self._open[folder] = fd
        while len(self._open) > max(OPEN_FOLDERS, 1):  # never the one just opened
            _, oldest = self._open.popitem(last=False)
            os.close(oldest)
        return fd

    def release(self) -> None:
        """Closes every folder but the root: the next use opens (and checks) it again."""
        while self._open:
            os.close(self._open.popitem()[1])

    def close(self) -> None:
        self.release()
        os.close(self._root)


@dataclass(frozen=True)
class Own:
    """tagmatrix's own output, left out whatever the patterns say: ``paths`` (with all
    below them), anything ``named`` so at any depth, and any folder holding a file
    named ``marker`` (a reports folder, wherever a run put it)."""

    paths: Sequence[str]
    named: str
    marker: str


def walk(folders: Folders, matcher: Matcher, own: Own,
         listed: Callable[[str], None] | None = None) -> list[Entry]:
    """The context's entries in path order: docker-py's walk (a path the patterns
    exclude is left out; an excluded folder is not entered unless a "!" pattern may
    bring something below it back), minus ``own``. ``listed(folder)`` runs after each
    folder is listed (tests use it to change the folder at that moment)."""
    found: list[Entry] = []
    dropped: set[str] = set()
    pending = [""]
    while pending:
        folder = pending.pop()
        fd = folders.fd(folder)
        try:
            with os.scandir(fd) as listing:
                names = [item.name for item in listing]
        except OSError as exc:
            raise _failure(exc, folder or ".") from exc
        if folder and own.marker in names:
            dropped.add(folder)
            continue
        for base in names:
            name = f"{folder}/{base}" if folder else base
            if base == own.named or any(name == p or name.startswith(p + "/")
                                        for p in own.paths):
                continue
            try:
                info = os.stat(base, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the listing: not part of this state of the folder
            kind = _kind(info.st_mode)
            if kind is None:
                continue
            excluded = matcher.excluded(name)
            if not excluded:
                link = _readlink(base, fd, name) if kind is Kind.LINK else ""
                found.append(Entry.of(name, info, kind, link))
            if kind is Kind.FOLDER and (not excluded or matcher.may_hold_exception(name)):
                folders.expect(name, info.st_dev, info.st_ino)
                pending.append(name)
        if listed is not None:
            listed(folder)
    found = [e for e in found if e.name not in dropped]
    found.sort(key=lambda e: e.name)
    return found


def _failure(exc: OSError, name: str) -> Exception:
    """What a failed open or listing of ``name`` means: unreadable (permissions: an
    OSError naming the path), else changed since the listing."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OSError(exc.errno, exc.strerror, name)
    return ProjectChanged(name)


def _readlink(base: str, fd: int, name: str) -> str:
    try:
        return os.readlink(base, dir_fd=fd)
    except OSError as exc:  # EINVAL: no longer a link
        raise ProjectChanged(name) from exc


def open_file(folders: Folders, entry: Entry) -> int:
    """A descriptor of ``entry`` (a file), which must still be the file listed."""
    parent = folders.fd(_parent(entry.name))
    try:
        fd = os.open(entry.name.rpartition("/")[2], _FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise _failure(exc, entry.name) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino, info.st_size) != (
            entry.device, entry.inode, entry.size):
        os.close(fd)
        raise ProjectChanged(entry.name)
    return fd
