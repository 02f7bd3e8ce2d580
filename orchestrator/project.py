"""What tagmatrix reads from the project folder: packaging metadata, dependency groups,
requirements files, .dockerignore and a custom Dockerfile's FROM.

Everything here is read as hostile input (a pull request's checkout): nothing is
executed, files are read only when they are regular files inside the project (a
symlink pointing out of it is refused), and sizes are capped. The project's build
backend never runs on the host; the sdist is built in a container (see
``incontainer/artifact.py``).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .settings import ProjectKind

MAX_FILE = 1024 * 1024  # pyproject.toml, requirements files, .dockerignore, Dockerfile
MAX_REQUIREMENT_FILES = 200  # -r/-c files followed from the listed ones
_PYTHON_ARG = re.compile(r"\$\{?PYTHON_(?:IMAGE|TAG)\b")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ProjectError(ValueError):
    """Something in the project folder is unusable; ``where`` is ``file:line`` if known."""

    def __init__(self, message: str, *, hint: str | None = None, where: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.where = where


def read_text(root: Path, relative: str | PurePosixPath) -> str | None:
    """A regular file inside ``root`` as text; None if it does not exist. A symlink, a
    path leaving ``root`` or a file over MAX_FILE is a :class:`ProjectError`."""
    path = inside(root, str(relative))
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise ProjectError(f"{relative} is a symbolic link; tagmatrix reads only regular files "
                           "of the project", hint="replace the link by the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise ProjectError(f"{relative} is not a regular file")
    if info.st_size > MAX_FILE:
        raise ProjectError(f"{relative} is {info.st_size} bytes, over the {MAX_FILE}-byte cap")
    # O_NOFOLLOW: the file cannot be swapped for a link between lstat and open
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_FILE + 1).decode("utf-8", errors="replace")


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` that leave the project and
    parent folders that are links out of it (the last component is not followed:
    callers lstat it)."""
    if not relative or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise ProjectError(f"{relative!r} must be a path relative to the project folder")
    normal = posixpath.normpath(relative.replace("\\", "/"))
    root_resolved = root.resolve()
    if normal == ".":
        return root_resolved
    outside = ProjectError(f"{relative} is outside the project folder {root}",
                           hint="keep it inside the project (nothing outside it may enter "
                                "a build)")
    if normal == ".." or normal.startswith("../"):
        raise outside
    path = root / normal
    parent = path.parent.resolve()
    if parent != root_resolved and root_resolved not in parent.parents:
        raise outside
    return parent / path.name


@dataclass(frozen=True, kw_only=True)
class ProjectInfo:
    """The project's packaging facts, read without running anything."""

    root: Path
    packaged: bool  # pyproject.toml with [project] or [build-system], or setup.py
    name: str | None = None  # [project].name when static
    # [project.optional-dependencies] keys when static; None when dynamic or unknown
    extras: frozenset[str] | None = None
    groups: Mapping[str, Any] = field(default_factory=dict)  # [dependency-groups]
    has_requirements_txt: bool = False

    @classmethod
    def read(cls, root: Path) -> ProjectInfo:
        text = read_text(root, "pyproject.toml")
        data: dict[str, Any] = {}
        if text is not None:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ProjectError(f"pyproject.toml is not valid TOML: {exc}") from exc
        project = data.get("project") if isinstance(data.get("project"), dict) else None
        setup_py = (root / "setup.py").is_file()
        packaged = project is not None or isinstance(data.get("build-system"), dict) \
            or setup_py
        extras: frozenset[str] | None = None
        name = None
        if project is not None:
            name = project.get("name") if isinstance(project.get("name"), str) else None
            dynamic = project.get("dynamic") or []
            optional = project.get("optional-dependencies") or {}
            if "optional-dependencies" not in dynamic and isinstance(optional, dict) \
                    and not setup_py:
                extras = frozenset(str(k) for k in optional)
        groups = data.get("dependency-groups") or {}
        if not isinstance(groups, dict):
            raise ProjectError("pyproject.toml: [dependency-groups] is not a table")
        return cls(root=root, packaged=packaged, name=name, extras=extras, groups=groups,
                   has_requirements_txt=(root / "requirements.txt").is_file())

    def resolve_groups(self, names: Sequence[str]) -> tuple[str, ...]:
        """The requirement strings of dependency groups, ``include-group`` followed, as
        pip resolves them (the PEP 735 reference implementation does the work)."""
        if not names:
            return ()
        import difflib

        from dependency_groups import resolve

        for name in names:
            if name not in self.groups:
                known = sorted(self.groups)
                close = difflib.get_close_matches(name, known, n=1)
                raise ProjectError(
                    f"dependency group {name!r} is not in pyproject.toml's [dependency-groups]",
                    hint=f"did you mean '{close[0]}'?" if close
                    else ("groups: " + ", ".join(known) if known
                          else "the project declares no dependency groups"))
        try:
            return tuple(resolve(self.groups, *names))
        except (LookupError, ValueError, TypeError) as exc:
            # a cycle, an include of a missing group, or an invalid requirement string
            raise ProjectError(f"pyproject.toml [dependency-groups]: {exc}") from exc

    def check_buildable(self, kind: ProjectKind) -> None:
        """A project to build (sdist, wheel, editable) needs packaging metadata."""
        if kind in (ProjectKind.SDIST, ProjectKind.WHEEL, ProjectKind.EDITABLE) \
                and not self.packaged:
            raise ProjectError(f"{self.root} has no pyproject.toml ([project] or "
                               "[build-system]) or setup.py to build",
                               hint="use project: none (the application template), or add "
                                    "packaging metadata")

    def kind(self, asked: ProjectKind) -> ProjectKind:
        """``auto`` resolved: a packaged project is built into an sdist, else none."""
        if asked is ProjectKind.AUTO:
            return ProjectKind.SDIST if self.packaged else ProjectKind.NONE
        return asked

    def check_extras(self, extras: Iterable[str]) -> None:
        """Extras the static metadata does not declare (dynamic metadata: unchecked)."""
        if self.extras is None:
            return
        import difflib

        for extra in extras:
            if extra not in self.extras:
                close = difflib.get_close_matches(extra, sorted(self.extras), n=1)
                raise ProjectError(
                    f"the project has no extra {extra!r} ([project.optional-dependencies])",
                    hint=f"did you mean '{close[0]}'?" if close
                    else ("extras: " + ", ".join(sorted(self.extras)) if self.extras
                          else "it declares none; dependency groups are listed under "
                               "install.groups"))


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Requirements-file lines with continuations joined and comments dropped."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield start, buffer.strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


_FILE_OPTIONS = {"-r": "r", "--requirement": "r", "-c": "c", "--constraint": "c",
                 "-f": "f", "--find-links": "f", "-e": "e", "--editable": "e"}


def _option(line: str) -> tuple[str, str] | None:
    for flag, kind in _FILE_OPTIONS.items():
        if line == flag:
            return kind, ""
        for sep in (" ", "=", "\t") if flag.startswith("--") else (" ", "\t", ""):
            if line.startswith(flag + sep) and (sep or not flag.startswith("--")):
                return kind, line[len(flag) + len(sep):].strip()
    return None


def _is_local_path(value: str) -> bool:
    archive = value.endswith((".whl", ".tar.gz", ".zip")) and not _URL.match(value)
    return value.startswith((".", "/", "file:")) or archive


def requirement_files(root: Path, listed: Sequence[str]) -> tuple[str, ...]:
    """The project-relative paths a dependency install needs for ``listed`` requirements
    files: the files, the ``-r``/``-c`` files they include, local ``--find-links``
    folders and local packages they name. A line that installs the project itself
    (``-e .``, ``.[tests]``) is refused: tagmatrix installs the project (install.project)."""
    needed: dict[str, None] = {}
    queue = [(posixpath.normpath(p), "") for p in listed]
    while queue:
        relative, origin = queue.pop(0)
        if relative in needed:
            continue
        if len(needed) >= MAX_REQUIREMENT_FILES:
            raise ProjectError(f"requirements files include more than {MAX_REQUIREMENT_FILES} "
                               "files", where=origin)
        try:
            text = read_text(root, relative)
        except ProjectError as exc:
            exc.where = exc.where or origin
            raise
        if text is None:
            raise ProjectError(f"requirements file {relative} does not exist in the project",
                               hint="paths are relative to the project folder", where=origin)
        needed[relative] = None
        folder = PurePosixPath(relative).parent
        for number, line in _logical_lines(text):
            here = f"{relative}:{number}"
            option = _option(line)
            kind, value = option if option else ("", line)
            if kind in ("r", "c"):
                queue.append((posixpath.normpath(str(folder / value)), here))
                continue
            if kind == "f":
                if not _URL.match(value):
                    _local(root, str(folder / value), here, needed, self_ok=True)
                continue
            if kind == "e" or (not kind and not line.startswith("-")):
                target = re.sub(r"\[.*\]$", "", value.split(";")[0].split(" @ ")[0].strip())
                if target.startswith("file:"):
                    target = re.sub(r"^file:(//)?", "", target)
                if kind == "e" and _URL.match(target):
                    continue  # a VCS URL
                if _is_local_path(target) or kind == "e":
                    _local(root, target, here, needed, self_ok=False)
    return tuple(needed)


def _local(root: Path, relative: str, where: str, needed: dict[str, None], *,
           self_ok: bool) -> None:
    try:
        path = inside(root, relative)
    except ProjectError as exc:
        exc.where = where
        raise
    if path == root.resolve():
        if self_ok:
            return
        raise ProjectError("this line installs the project itself; tagmatrix installs it "
                           "(install.project), with the extras under install.extras",
                           hint="remove the line, or list a requirements file without it",
                           where=where)
    if not path.exists():
        raise ProjectError(f"{relative} does not exist in the project", where=where)
    needed[str(PurePosixPath(os.path.relpath(path, root.resolve())))] = None


def dockerignore(root: Path) -> list[str]:
    """The patterns of the project's .dockerignore (a link to a file elsewhere is
    refused: its content would enter the image)."""
    text = read_text(root, ".dockerignore")
    if text is None:
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def unpinned_from(text: str) -> tuple[int, str] | None:
    """(line, instruction) when a Dockerfile's first FROM uses neither PYTHON_IMAGE nor
    PYTHON_TAG: every cell would then run the same hard-coded interpreter."""
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        start = number
        line = lines[number]
        while line.rstrip().endswith("\\") and number + 1 < len(lines):
            number += 1
            line = line.rstrip()[:-1] + " " + lines[number].strip()
        number += 1
        words = line.split()
        if words and words[0].upper() == "FROM":
            return None if _PYTHON_ARG.search(line) else (start + 1, " ".join(words))
    return None


MOUNT_SCAN_LIMIT = 200_000  # entries walked when checking a folder to bind-mount
_SYSTEM_ROOTS = ("/proc", "/sys", "/dev", "/run", "/var/run", "/var/lib/docker",
                 "/var/lib/containerd", "/etc", "/boot")


def repository_root(folder: Path) -> Path:
    """The git work tree holding ``folder`` (the nearest folder above it with a
    ``.git``), else ``folder`` itself: how far up a matrix file's ``project:`` may point."""
    resolved = folder.resolve()
    for candidate in (resolved, *resolved.parents):
        if (candidate / ".git").exists():
            return candidate
    return resolved


def mount_problem(root: Path) -> str | None:
    """Why ``root`` must not be bind-mounted into test containers: it is a system
    folder, or holds a socket anywhere below it (a Docker or containerd socket would
    hand the tests the engine; read-only does not stop connect())."""
    resolved = root.resolve()
    if resolved == Path("/") or any(resolved == Path(p) or Path(p) in resolved.parents
                                    for p in _SYSTEM_ROOTS):
        return f"{resolved} is a system folder"
    seen = 0
    pending = [str(resolved)]  # a stack, not os.walk: 1,500 nested folders overflowed it
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MOUNT_SCAN_LIMIT:
                return (f"{resolved} holds more than {MOUNT_SCAN_LIMIT} entries; tagmatrix "
                        "cannot check it for sockets")
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISSOCK(mode):
                return f"{entry.path} is a socket"
            if stat.S_ISDIR(mode):  # never a link to a folder
                pending.append(entry.path)
    return None
