"""What tagmatrix reads from the project folder: packaging metadata, dependency groups,
requirements files, .dockerignore and a custom Dockerfile's FROM.

Everything here is read as hostile input (a pull request's checkout): nothing is
executed, files are read only when they are regular files inside the project (a
symlink pointing out of it is refused), and sizes are capped. The project's build
backend never runs on the host; the sdist is built in a container (see
``incontainer/artifact.py``).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .depgroups import GroupError, GroupResolver, normalize
from .settings import ProjectKind

MAX_FILE = 1024 * 1024  # pyproject.toml, requirements files, .dockerignore, Dockerfile
_PYTHON_ARG = re.compile(r"\$\{?PYTHON_(?:IMAGE|TAG)\b")
# PEP 508 names, which PEP 685 makes the grammar of extras (compared normalised)
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


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
    requires_python: str | None = None  # [project].requires-python when static

    @classmethod
    def read(cls, root: Path) -> ProjectInfo:
        text = read_text(root, "pyproject.toml")
        data: dict[str, Any] = {}
        if text is not None:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ProjectError(f"pyproject.toml is not valid TOML: {exc}") from exc
            except RecursionError as exc:  # tomllib parses nested arrays/tables by recursion
                raise ProjectError("pyproject.toml nests arrays or tables too deeply for "
                                   "Python's TOML parser",
                                   hint="no real pyproject.toml nests hundreds of levels") \
                    from exc
        project = data.get("project") if isinstance(data.get("project"), dict) else None
        setup_py = (root / "setup.py").is_file()
        packaged = project is not None or isinstance(data.get("build-system"), dict) \
            or setup_py
        extras: frozenset[str] | None = None
        name = requires = None
        if project is not None:
            name = project.get("name") if isinstance(project.get("name"), str) else None
            dynamic = project.get("dynamic") or []
            requires = project.get("requires-python") \
                if isinstance(project.get("requires-python"), str) else None
            optional = project.get("optional-dependencies") or {}
            if "optional-dependencies" not in dynamic and isinstance(optional, dict) \
                    and not setup_py:
                extras = frozenset(normalize_extra(str(k)) for k in optional)
        groups = data.get("dependency-groups") or {}
        if not isinstance(groups, dict):
            raise ProjectError("pyproject.toml: [dependency-groups] is not a table")
        return cls(root=root, packaged=packaged, name=name, extras=extras, groups=groups,
                   has_requirements_txt=(root / "requirements.txt").is_file(),
                   requires_python=requires)

    def refuses(self, python: str, resolved: str | None) -> str | None:
        """Why the project cannot be installed on the cell's interpreter (its tag's
        version ``python``, the full ``resolved`` one when the catalogue knows it), by
        its static requires-python; None when it can, or when that cannot be told."""
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version

        if not self.requires_python:
            return None
        numbers = re.match(r"(\d+)\.(\d+)(\.\d+)?", python)
        if numbers is None:
            return None
        # a tag without a patch holds that minor's newest release
        version = resolved or (python if numbers[3] else f"{numbers[1]}.{numbers[2]}.999")
        try:
            if SpecifierSet(self.requires_python).contains(Version(version), prereleases=True):
                return None
        except (InvalidSpecifier, InvalidVersion):
            return None  # pip says what is wrong with it, at install
        return (f"the project requires Python {self.requires_python} (pyproject.toml "
                f"requires-python): it cannot be installed on {python}")

    @functools.cached_property
    def _groups(self) -> GroupResolver:
        # once per project: every cell's plan asks again (cached_property writes the
        # instance's __dict__, which a frozen dataclass allows)
        return GroupResolver(self.groups)

    def resolve_groups(self, names: Sequence[str]) -> tuple[str, ...]:
        """The requirement strings of dependency groups, ``include-group`` followed, each
        requirement once (see depgroups.py: parsed by the PEP 735 reference
        implementation, expanded within caps)."""
        if not names:
            return ()
        import difflib

        known = {normalize(g): g for g in self.groups}
        for name in names:
            if normalize(name) not in known:
                close = difflib.get_close_matches(name, sorted(self.groups), n=1)
                raise ProjectError(
                    f"dependency group {name!r} is not in pyproject.toml's [dependency-groups]",
                    hint=f"did you mean '{close[0]}'?" if close
                    else ("groups: " + ", ".join(sorted(self.groups)) if self.groups
                          else "the project declares no dependency groups"))
        try:
            return self._groups.resolve(names)
        except GroupError as exc:
            raise ProjectError(f"pyproject.toml [dependency-groups]: {exc}",
                               hint=exc.hint) from exc

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
        """Every extra must be a name (PEP 685); with static metadata, one the project
        declares (compared normalised). Dynamic metadata: only the grammar is checked."""
        import difflib

        for extra in extras:
            check_extra_name(extra)
            if self.extras is None or normalize_extra(extra) in self.extras:
                continue
            close = difflib.get_close_matches(normalize_extra(extra), sorted(self.extras), n=1)
            raise ProjectError(
                f"the project has no extra {extra!r} ([project.optional-dependencies])",
                hint=f"did you mean '{close[0]}'?" if close
                else ("extras: " + ", ".join(sorted(self.extras)) if self.extras
                      else "it declares none; dependency groups are listed under "
                           "install.groups"))


def normalize_extra(name: str) -> str:
    """PEP 685: extras compare as normalised names (``Tests_Extra`` is ``tests-extra``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_extra_name(extra: str) -> None:
    """An extra is a PEP 508 name (letters, digits, ``-``, ``_``, ``.``; a letter or digit
    at both ends), as PEP 685 requires, whether or not the project's extras are known."""
    if not _NAME.match(extra):
        raise ProjectError(f"{extra!r} is not an extra name (PEP 685: letters, digits, "
                           "'-', '_' and '.', starting and ending with a letter or digit)",
                           hint="write the extra as [project.optional-dependencies] names "
                                "it, e.g. tests")


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
