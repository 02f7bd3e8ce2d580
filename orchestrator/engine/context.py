"""Build contexts as snapshots: the project is read once per run and engine, and every
build of the run streams that one reading, never the folder again.

So a run builds exactly what it fingerprinted (a second run changing the same folder
meanwhile cannot slip its code into this run's cells), the fingerprint every cell
records is the code built (it does not depend on which build asks, nor on where a
build puts the project: the project image's ``project/`` prefix is applied while
streaming), and the folder is read once however many cells build.

Taking a snapshot: the folder is listed by file descriptors, never following a link
(engine/walk.py); the files' sizes are added up and a context over the cap is refused
before a byte is copied; then each file's bytes are copied to an anonymous temporary
file and hashed in the same pass. Runs of zeros are left as holes, so a sparse file
costs no disk here. A build streams the members (tar headers made on the fly) with
positional reads, so concurrent builds share the snapshot safely.

What enters: the project minus ``rules.excludes`` (tagmatrix's defaults), then the
project's .dockerignore (docker-py's semantics, so "!" lines bring paths back as in
``docker build``), then minus tagmatrix's own output, which nothing brings back: every
.tagmatrix folder (the run history's place beside any matrix.yaml), every reports
folder (it holds reportdir.MARKER) and ``rules.own``.
Regular files, folders and links (as links, never followed) are kept; sockets, FIFOs
and devices are left out.
"""

from __future__ import annotations

import functools
import grp
import hashlib
import io
import itertools
import logging
import os
import pwd
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildFailed, Stage
from ..ignorefile import read_patterns
from ..jobs import OWN_FOLDER, ContextRules
from ..project import ProjectError
from ..reportdir import MARKER
from .ignore import Matcher, PatternError
from .walk import Entry, Folders, Kind, Own, ProjectChanged, open_file, walk

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
_ZEROS = bytes(CHUNK)
HEAVY = {"node_modules", "venv", "env"}  # worth a warning when they are not excluded
LARGE = 100 * 1024 * 1024
_TYPES = {Kind.FILE: tarfile.REGTYPE, Kind.FOLDER: tarfile.DIRTYPE, Kind.LINK: tarfile.SYMTYPE}


@dataclass(frozen=True)
class Hooks:
    """Moments of a snapshot, for tests that change the folder exactly then."""

    listed: Callable[[str], None] | None = None  # after each folder is listed
    copying: Callable[[], None] | None = None  # after the listing, before the first copy


class ContextSnapshot:
    """One reading of the project: ``fingerprint`` (paths, permission bits and contents
    in path order, not mtimes: a fresh checkout of the same commit is the same project)
    and, unless taken with ``content=False`` (mount mode: nothing is built),
    ``stream(prefix, extra)`` for each build."""

    def __init__(self, root: Path, rules: ContextRules, *, content: bool = True,
                 hooks: Hooks | None = None) -> None:
        self.root = root
        self.has_content = content
        hooks = hooks or Hooks()
        try:
            patterns = [*rules.excludes, *read_patterns(root), "!Dockerfile"]  # as docker-py
            matcher = Matcher(patterns)
        except (ProjectError, PatternError) as exc:
            raise BuildFailed(f".dockerignore: {exc}", stage=Stage.BUILD) from exc
        self._file = tempfile.TemporaryFile(prefix="tagmatrix-context-") if content else None  # noqa: SIM115 - kept open for the run
        self._offsets: dict[str, int] = {}
        self._lengths: dict[str, int] = {}
        self._lock = threading.Lock()
        try:
            folders = Folders(root)
            try:
                self.entries = walk(folders, matcher, Own(rules.own, OWN_FOLDER, MARKER),
                                    hooks.listed)
                folders.release()  # the copy opens every folder again, checked again
                self.size = sum(e.size for e in self.entries)
                _check_size(root, self.entries, self.size, rules.max_bytes)
                if hooks.copying is not None:
                    hooks.copying()
                self.fingerprint = self._copy(folders)
            finally:
                folders.close()
        except ProjectChanged as exc:
            self.close()
            raise BuildFailed(f"the project changed while tagmatrix read it: {exc.path} "
                              "(rerun when nothing writes to it)", stage=Stage.BUILD) from exc
        except OSError as exc:
            self.close()
            where = exc.filename or root
            raise BuildFailed(f"cannot read {where} in the project folder {root}: "
                              f"{exc.strerror or exc}", stage=Stage.BUILD) from exc
        except BaseException:
            self.close()
            raise
        self.files = len(self.entries)
        self._names = {e.name for e in self.entries}
        heavy = sorted({e.name.split("/", 1)[0] for e in self.entries} & HEAVY)
        if heavy:
            log.warning("build context %s includes %s: add them to .dockerignore", root,
                        ", ".join(heavy))
        if self.size > LARGE:
            log.warning("build context %s is %.0f MB", root, self.size / 1e6)

    def _copy(self, folders: Folders) -> str:
        """Copies (or only hashes) every file; returns the fingerprint."""
        digest = hashlib.sha256()
        offset = 0
        for entry in self.entries:
            # (a name that is not UTF-8 hashes as its bytes on disk)
            digest.update(f"{entry.name}\0{entry.mode & 0o777:o}\0{_TYPES[entry.kind]!r}\0"
                          f"{entry.link}\0{entry.size}\0".encode("utf-8", "surrogateescape"))
            if entry.kind is not Kind.FILE:
                continue
            self._offsets[entry.name] = offset
            fd = open_file(folders, entry)
            try:
                self._read(fd, entry, offset, digest)
            finally:
                os.close(fd)
            offset += entry.size
        if self._file is not None:
            os.ftruncate(self._file.fileno(), offset)  # the holes at the end count too
        return f"sha256:{digest.hexdigest()}"

    def _read(self, fd: int, entry: Entry, offset: int, digest: hashlib._Hash) -> None:
        done = 0
        while done < entry.size:
            data = os.read(fd, min(CHUNK, entry.size - done))
            if not data:  # shorter than listed: truncated meanwhile
                raise ProjectChanged(entry.name)
            digest.update(data)
            # zeros are left as a hole: a sparse file stays sparse in the snapshot
            if self._file is not None and data != _ZEROS[:len(data)]:
                os.pwrite(self._file.fileno(), data, offset + done)
            done += len(data)

    def has(self, name: str) -> bool:
        """Whether the snapshot holds ``name`` (relative, "/"-separated)."""
        return name in self._names

    def members(self) -> Iterator[str]:
        """Member names (for tests and diagnostics)."""
        return (e.name for e in self.entries)

    def stream(self, extra: Mapping[str, bytes] | None = None, *, prefix: str = "") -> _Stream:
        """The snapshot's members (each name after ``prefix``), then ``extra`` (name ->
        bytes) as further members: a file-like object the Docker SDK streams."""
        if self._file is None:
            raise RuntimeError("a snapshot taken without its content cannot be streamed")
        tail = io.BytesIO()
        with tarfile.open(fileobj=tail, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, body in (extra or {}).items():
                member = tarfile.TarInfo(name)
                member.size = len(body)
                member.mode = 0o644
                archive.addfile(member, io.BytesIO(body))
        with self._lock:
            if prefix not in self._lengths:
                self._lengths[prefix] = sum(len(_header(e, prefix)) + e.size + _pad(e.size)
                                            for e in self.entries)
            length = self._lengths[prefix]
        body = tail.getvalue()
        return _Stream(itertools.chain(self._members(prefix), (body,)), length + len(body))

    def _members(self, prefix: str) -> Iterator[bytes]:
        assert self._file is not None
        fd = self._file.fileno()
        for entry in self.entries:
            yield _header(entry, prefix)
            if entry.kind is Kind.FILE:
                position, left = self._offsets[entry.name], entry.size
                while left:
                    data = os.pread(fd, min(CHUNK, left), position)
                    if not data:  # never end early: the engine was promised len() bytes
                        raise OSError(f"build context snapshot ends early at {entry.name}")
                    yield data
                    position += len(data)
                    left -= len(data)
                yield bytes(_pad(entry.size))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> ContextSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_size(root: Path, entries: list[Entry], size: int, cap: int) -> None:
    if size <= cap:
        return
    largest = sorted((e for e in entries if e.kind is Kind.FILE), key=lambda e: -e.size)[:3]
    raise BuildFailed(
        f"the build context of {root} is {_human(size)}, over build.max_context "
        f"({_human(cap)}); largest: "
        + ", ".join(f"{e.name} ({_human(e.size)})" for e in largest)
        + " (add them to .dockerignore, or raise build.max_context)", stage=Stage.BUILD)


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _pad(size: int) -> int:
    return -size % tarfile.BLOCKSIZE


def _header(entry: Entry, prefix: str) -> bytes:
    """The tar header tarfile's gettarinfo would write for ``entry`` under ``prefix``."""
    info = tarfile.TarInfo(prefix + entry.name)
    info.mode = stat.S_IMODE(entry.mode)
    info.uid, info.gid = entry.uid, entry.gid
    info.uname, info.gname = _user(entry.uid), _group(entry.gid)
    info.mtime = entry.mtime
    info.type = _TYPES[entry.kind]
    info.size = entry.size
    info.linkname = entry.link
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


@functools.cache
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.cache
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


class _Stream(io.RawIOBase):
    """``chunks`` of bytes, ``length`` in all: never fewer (the engine was promised
    ``len()`` bytes and would wait for the rest for ever)."""

    def __init__(self, chunks: Iterator[bytes], length: int) -> None:
        self._chunks = chunks
        self._length = length
        self._pending = memoryview(b"")
        self._position = 0

    def readable(self) -> bool:
        return True

    def __len__(self) -> int:  # requests sends a Content-Length from it
        return self._length

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._position != self._length:
                    raise OSError(f"build context snapshot ends at {self._position} of "
                                  f"{self._length} bytes")
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self._position += size
        return size
