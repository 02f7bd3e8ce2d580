"""The checkout's commit and branch, read from .git without running git.

Running git on the host would run the checkout's configuration (``core.fsmonitor``,
hooks, filters): code from a pull request. So this reads ``HEAD``, loose refs and
``packed-refs`` itself, treating every byte as hostile:

- every file is opened relative to a directory descriptor with ``O_NOFOLLOW`` on
  each path component, so no symbolic link is followed (inside .git or out of it);
  FIFOs and devices are refused (``O_NONBLOCK``, then only regular files are read);
- sizes are capped (4 KiB for HEAD, a loose ref or a ``.git`` file; 64 MiB for
  packed-refs); symbolic refs are followed at most 5 deep;
- ref names are checked against git's rules before they are used as paths; only a
  40- or 64-digit hex object name or a checked branch name ever leaves this module.

A ``.git`` *file* (a linked worktree or a submodule) names the real git folder;
that folder is opened the same way (its last component must not be a link), and a
worktree's ``commondir`` must stay a relative path. Anything unexpected gives
"unknown" (None), never an error: the history then keys runs by the matrix hash.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

_SMALL = 4096
_PACKED = 64 * 1024 * 1024
_MAX_DEPTH = 5
_MAX_LEVELS = 64  # folders walked up from the start looking for .git
_OBJECT = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)|^\.|/$|\.$")
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class GitInfo:
    """What the checkout is at; None where unknown (no git, detached HEAD, refused)."""

    commit: str | None = None
    branch: str | None = None


def _open_dir(path: str | Path, dir_fd: int | None = None) -> int | None:
    try:
        return os.open(path, _FLAGS | os.O_DIRECTORY, dir_fd=dir_fd)
    except OSError:
        return None


def _read(dir_fd: int, relative: str, limit: int) -> bytes | None:
    """A regular file below ``dir_fd``, no link followed, at most ``limit`` bytes."""
    parts = relative.split("/")
    opened: list[int] = []
    try:
        current = dir_fd
        for part in parts[:-1]:
            current = os.open(part, _FLAGS | os.O_DIRECTORY, dir_fd=current)
            opened.append(current)
        handle = os.open(parts[-1], _FLAGS | os.O_NONBLOCK, dir_fd=current)
        opened.append(handle)
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(handle, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    except OSError:
        return None
    finally:
        for fd in opened:
            os.close(fd)


def valid_ref(name: str) -> bool:
    """A ref name git itself would accept (``git check-ref-format``), below refs/."""
    return name.startswith("refs/") and len(name) <= 1024 and not _BAD_REF.search(name)


def _packed(common_fd: int, ref: str) -> str | None:
    data = _read(common_fd, "packed-refs", _PACKED)
    if data is None:
        return None
    wanted = ref.encode()
    for line in data.splitlines():
        if line[:1] in (b"#", b"^"):
            continue
        sha, _, name = line.partition(b" ")
        if name.strip() == wanted and _OBJECT.fullmatch(sha):
            return sha.decode()
    return None


def _resolve(git_fd: int, common_fd: int) -> GitInfo:
    head = _read(git_fd, "HEAD", _SMALL)
    if head is None:
        return GitInfo()
    content, branch = head.strip(), None
    for _ in range(_MAX_DEPTH):
        if _OBJECT.fullmatch(content):
            return GitInfo(commit=content.decode(), branch=branch)
        if not content.startswith(b"ref:"):
            return GitInfo(branch=branch)
        try:
            ref = content[4:].strip().decode("ascii")
        except UnicodeDecodeError:
            return GitInfo(branch=branch)
        if not valid_ref(ref):
            return GitInfo(branch=branch)
        if branch is None and ref.startswith("refs/heads/"):
            branch = ref[len("refs/heads/"):]
        loose = _read(common_fd, ref, _SMALL)
        if loose is None:
            packed = _packed(common_fd, ref)
            return GitInfo(commit=packed, branch=branch)  # None: a branch with no commit yet
        content = loose.strip()
    return GitInfo(branch=branch)


def _git_folder(top_fd: int, folder: Path) -> tuple[int, int] | None:
    """(git dir fd, common dir fd) for the ``.git`` in ``folder`` (``top_fd``)."""
    try:
        mode = os.stat(".git", dir_fd=top_fd, follow_symlinks=False).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        git_fd = _open_dir(".git", top_fd)
        return (git_fd, os.dup(git_fd)) if git_fd is not None else None
    if not stat.S_ISREG(mode):
        return None  # a link or anything else: refused
    pointer = _read(top_fd, ".git", _SMALL)
    if pointer is None or not pointer.startswith(b"gitdir:"):
        return None
    target = pointer[len(b"gitdir:"):].strip().decode("utf-8", "replace")
    git_fd = _open_dir(folder / target)  # an absolute target replaces folder
    if git_fd is None:
        return None
    common = _read(git_fd, "commondir", _SMALL)
    if common is None:
        return git_fd, os.dup(git_fd)
    relative = common.strip().decode("utf-8", "replace")
    if not relative or Path(relative).is_absolute():
        os.close(git_fd)
        return None
    current, opened = git_fd, list[int]()
    for part in (p for p in relative.split("/") if p not in ("", ".")):
        step = _open_dir(part, current)  # one component at a time, no links
        if step is None:
            for fd in (git_fd, *opened):
                os.close(fd)
            return None
        opened.append(step)
        current = step
    if not opened:
        return git_fd, os.dup(git_fd)
    for fd in opened[:-1]:
        os.close(fd)
    return git_fd, opened[-1]


def read_git(start: Path) -> GitInfo:
    """Commit and branch of the checkout that holds ``start`` (a folder), found by walking
    up to the first ``.git`` as git does; GitInfo() when there is none or it is refused."""
    if os.open not in os.supports_dir_fd:
        return GitInfo()  # no descriptor-relative opens (Windows): no safe way here
    folder = start.resolve()  # the physical path, as git walks it
    for _ in range(_MAX_LEVELS):
        try:  # the folders themselves are the user's path: links allowed up to .git
            top_fd: int | None = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            top_fd = None
        if top_fd is None:
            return GitInfo()
        try:
            fds = _git_folder(top_fd, folder)
            if fds is not None:
                try:
                    return _resolve(*fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            if os.path.lexists(folder / ".git"):
                return GitInfo()  # there is a .git, but it was refused
        finally:
            os.close(top_fd)
        if folder.parent == folder:
            return GitInfo()
        folder = folder.parent
    return GitInfo()
