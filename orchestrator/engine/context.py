"""Build contexts as snapshots: the project is tarred once per run and every build of
the run reads that tar, never the folder again.

So a run builds exactly what it fingerprinted (a second run changing the same folder
meanwhile cannot slip its code into this run's cells), the folder is read once
however many cells build, and memory stays bounded: the tar is written to an
anonymous temporary file while the fingerprint is computed in the same pass, and
each build streams it (plus a few generated members) from disk with positional
reads, so concurrent builds share it safely.

What enters: the project folder minus tagmatrix's exclusions (see plan.context_excludes)
and the project's .dockerignore (docker-py's matcher, so "!" lines work as in
``docker build``). Regular files, folders and symlinks (as links, never followed) are
kept; sockets, FIFOs and devices are left out.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from docker.utils.build import exclude_paths

from ..errors import BuildFailed, Stage
from ..project import ProjectError, dockerignore

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
HEAVY = {"node_modules", "venv", "env"}  # worth a warning when they are not excluded
LARGE = 100 * 1024 * 1024


class _Hashing(io.RawIOBase):
    """A file read for the tar, hashed on the way."""

    def __init__(self, handle: IO[bytes], digest: hashlib._Hash) -> None:
        self.handle = handle
        self.digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.handle.read(len(buffer))
        self.digest.update(data)
        buffer[:len(data)] = data
        return len(data)


class ContextSnapshot:
    """The project as one build context: ``fingerprint`` (paths, permission bits and
    contents in path order, not mtimes: a fresh checkout of the same commit is the
    same project) and ``stream(extra)`` for each build."""

    def __init__(self, root: Path, excludes: Sequence[str], *, prefix: str = "",
                 dockerfile: str | None = None) -> None:
        self.root = root
        self._lock = threading.Lock()
        try:
            patterns = [*excludes, *dockerignore(root)]
        except ProjectError as exc:
            raise BuildFailed(f".dockerignore: {exc}", stage=Stage.BUILD) from exc
        try:
            names = sorted(exclude_paths(str(root), patterns, dockerfile=dockerfile))
        except OSError as exc:
            raise BuildFailed(f"cannot read the project folder {root}: {exc}",
                              stage=Stage.BUILD) from exc
        digest = hashlib.sha256()
        self.files = 0
        top = set()
        self._file = tempfile.TemporaryFile(prefix="tagmatrix-context-")  # noqa: SIM115 - kept open for the run
        try:
            with tarfile.open(fileobj=self._file, mode="w",
                              format=tarfile.PAX_FORMAT) as archive:
                for name in names:
                    self._add(archive, name, prefix, digest)
                    top.add(name.split(os.sep, 1)[0])
                # where the members end: a build appends its own after them
                self._end = archive.offset
            # builds read the file descriptor directly (os.pread): nothing may stay in
            # Python's write buffer, or a build would send fewer bytes than it announced
            # and the engine would wait for the rest forever
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self.size = self._end
        self.fingerprint = f"sha256:{digest.hexdigest()}"
        heavy = sorted(top & HEAVY)
        if heavy:
            log.warning("build context %s includes %s: add them to .dockerignore", root,
                        ", ".join(heavy))
        if self.size > LARGE:
            log.warning("build context %s is %.0f MB", root, self.size / 1e6)

    def _add(self, archive: tarfile.TarFile, name: str, prefix: str,
             digest: hashlib._Hash) -> None:
        path = self.root / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            return  # removed since the walk
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)
                or stat.S_ISLNK(info.st_mode)):
            return  # sockets, FIFOs, devices: nothing a build needs, some are hazards
        member = archive.gettarinfo(str(path), arcname=prefix + name.replace(os.sep, "/"))
        digest.update(f"{name}\0{member.mode & 0o777:o}\0{member.type!r}\0"
                      f"{member.linkname}\0{member.size}\0".encode())
        self.files += 1
        if not member.isfile():
            archive.addfile(member)
            return
        try:
            with path.open("rb") as handle:
                archive.addfile(member, io.BufferedReader(_Hashing(handle, digest), CHUNK))
        except (OSError, tarfile.TarError) as exc:
            raise BuildFailed(f"the project changed while tagmatrix read {name} ({exc}); "
                              "rerun when nothing writes to it", stage=Stage.BUILD) from exc

    def stream(self, extra: Mapping[str, bytes] | None = None) -> _Stream:
        """The snapshot's members, then ``extra`` (name -> bytes) as further members;
        a file-like object the Docker SDK streams to the engine."""
        tail = io.BytesIO()
        with tarfile.open(fileobj=tail, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, body in (extra or {}).items():
                member = tarfile.TarInfo(name)
                member.size = len(body)
                member.mode = 0o644
                archive.addfile(member, io.BytesIO(body))
        return _Stream(self._file.fileno(), self._end, tail.getvalue())

    def members(self) -> Iterator[str]:
        """Member names (for tests and diagnostics)."""
        with self._lock:
            self._file.seek(0)
            data = io.BytesIO(os.pread(self._file.fileno(), self._end, 0) + b"\0" * 1024)
        with tarfile.open(fileobj=data) as archive:
            yield from archive.getnames()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ContextSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Stream(io.RawIOBase):
    """``fd``'s first ``length`` bytes, then ``tail``: read with os.pread, so several
    builds can stream one snapshot at once."""

    def __init__(self, fd: int, length: int, tail: bytes) -> None:
        self._fd = fd
        self._length = length
        self._tail = tail
        self._position = 0

    def readable(self) -> bool:
        return True

    def __len__(self) -> int:  # requests sends a Content-Length from it
        return self._length + len(self._tail)

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if self._position < self._length:
            data = os.pread(self._fd, min(want, self._length - self._position), self._position)
            if not data:  # never end early: the engine was promised len(self) bytes
                raise OSError(f"build context snapshot ends at {self._position} of "
                              f"{self._length} bytes")
        else:
            start = self._position - self._length
            data = self._tail[start:start + want]
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)
