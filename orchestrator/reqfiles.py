"""Requirements files read on the host the way pip will read them in the container.

The host reads ``install.requirements`` files (a pull request's) to learn which project
files a dependency install needs: the files, what they include (``-r``/``-c``), local
``--find-links`` folders and local packages. pip reads the same files later, inside a
cell's build. What the host checks is only worth something if pip reads the same
thing, so each line is split as pip splits it (``break_args_options``, ``shlex``, the
same options through :mod:`optparse`, abbreviations included), and what the host
cannot read the way pip will is refused, one line with a hint, rather than guessed:

- pip's environment variables (``${NAME}``): pip expands them in the container, so a
  folder literally named ``${HOME}`` in the checkout would pass here while pip read
  another file;
- a file option (``-r``, ``-c``, ``-e``, ``-f``) with anything else on its line
  (``--pre -r ../x``): pip follows the first ``-r`` of a line, whatever precedes it.

Caps: MAX_REQUIREMENT_FILES files, MAX_REQUIREMENT_LINES logical lines in all (each
file is at most project.MAX_FILE bytes); every file is read once, however many lines
include it.
"""

from __future__ import annotations

import optparse
import os
import posixpath
import re
import shlex
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from .project import ProjectError, inside, read_text

MAX_REQUIREMENT_FILES = 200  # -r/-c files followed from the listed ones
MAX_REQUIREMENT_LINES = 100_000  # logical lines in all the files of one install
_ENV_VAR = re.compile(r"\$\{[A-Z0-9_]+\}")  # pip's ENV_VAR_RE (req_file.py)
_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's COMMENT_RE
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
FILE_OPTIONS = {"requirements": "r", "constraints": "c", "editables": "e", "find_links": "f"}
# pip's requirements-file options (pip/_internal/req/req_file.py SUPPORTED_OPTIONS and
# SUPPORTED_OPTIONS_REQ, pip 26.3): (dest, flags, takes a value)
_PIP_OPTIONS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("index_url", ("-i", "--index-url", "--pypi-url"), True),
    ("extra_index_urls", ("--extra-index-url",), True),
    ("no_index", ("--no-index",), False),
    ("constraints", ("-c", "--constraint"), True),
    ("requirements", ("-r", "--requirement"), True),
    ("editables", ("-e", "--editable"), True),
    ("find_links", ("-f", "--find-links"), True),
    ("no_binary", ("--no-binary",), True),
    ("only_binary", ("--only-binary",), True),
    ("prefer_binary", ("--prefer-binary",), False),
    ("require_hashes", ("--require-hashes",), False),
    ("no_require_hashes", ("--no-require-hashes",), False),
    ("pre", ("--pre",), False),
    ("all_releases", ("--all-releases",), True),
    ("only_final", ("--only-final",), True),
    ("trusted_hosts", ("--trusted-host",), True),
    ("features_enabled", ("--use-feature",), True),
    ("hashes", ("--hash",), True),
    ("config_settings", ("-C", "--config-settings"), True),
)
_EXACT = {flag: FILE_OPTIONS[dest] for dest, flags, _ in _PIP_OPTIONS if dest in FILE_OPTIONS
          for flag in flags}
_ONE_PER_LINE = "write each -r, -c, -e or -f option on a line of its own, as pip documents"


class _Unparsable(Exception):
    """optparse's complaint, kept instead of its exit."""


class OptionReader(optparse.OptionParser):
    """pip's requirements-file options; :meth:`read` lists those of one line in order
    (made once per reading: optparse's set-up costs more than a line)."""

    def __init__(self) -> None:
        super().__init__(add_help_option=False)
        self.seen: list[tuple[str, str]] = []
        for dest, flags, valued in _PIP_OPTIONS:
            self.add_option(*flags, dest=dest, action="callback", callback=self._record,
                            type="string" if valued else None)

    def _record(self, option: optparse.Option, _flag: str, value: Any, _parser: Any) -> None:
        self.seen.append((str(option.dest), "" if value is None else str(value)))

    def error(self, msg: str) -> NoReturn:
        raise _Unparsable(msg)

    def read(self, argv: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """(options as (dest, value), what is left over) of one line's arguments."""
        self.seen = []
        _, rest = self.parse_args(argv)
        return self.seen, rest


def _joined(text: str) -> Iterator[tuple[int, str]]:
    """pip's ``join_lines``: a line ending in a backslash continues on the next one
    (not a comment line); the joined line has the number of its first line."""
    joined: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.endswith("\\") and not _COMMENT.match(raw):
            if not joined:
                first = number
            joined.append(raw.strip("\\"))
            continue
        line = " " + raw if _COMMENT.match(raw) else raw  # comments never continue
        if joined:
            yield first, "".join([*joined, line])
            joined = []
        else:
            yield number, line
    if joined:
        yield first, "".join(joined)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's ``preprocess`` but the variable expansion (refused in :func:`parse_line`):
    continuations joined, then comments and blank lines dropped."""
    for number, joined in _joined(text):
        line = _COMMENT.sub("", joined).strip()
        if line:
            yield number, line


def _looks_like_file_option(token: str) -> bool:
    if re.match(r"^-[rcef]", token):
        return True
    name = token.split("=", 1)[0]
    return len(name) > 2 and name.startswith("--") and any(
        long.startswith(name) for long in ("--requirement", "--constraint", "--editable",
                                           "--find-links"))


def parse_line(line: str, where: str, reader: OptionReader | None = None) -> tuple[str, str]:
    """(kind, value) of one logical line: ``("r"|"c"|"e"|"f", path)`` for a file option,
    ``("", requirement)`` for a requirement, ``("-", "")`` for another option. A line
    the host cannot read as pip will is a :class:`ProjectError`."""
    variable = _ENV_VAR.search(line)
    if variable:
        raise ProjectError(f"{variable[0]} is expanded by pip inside the container, so "
                           "tagmatrix cannot check what this line names",
                           hint="write the path or value out in the file", where=where)
    # pip's break_args_options: the requirement is what comes before the first option
    tokens = line.split(" ")
    first = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
    requirement, options = " ".join(tokens[:first]), " ".join(tokens[first:])
    if requirement:
        return "", requirement  # pip ignores -r/-c/-e/-f after a requirement
    try:
        argv = shlex.split(options)
    except ValueError as exc:
        raise ProjectError(f"pip cannot split this line ({exc})", where=where) from exc
    if len(argv) == 2 and argv[0] in _EXACT:  # the usual "-r file": what optparse makes of it
        return _EXACT[argv[0]], argv[1]
    try:
        seen, rest = (reader or OptionReader()).read(argv)
    except _Unparsable as exc:
        if any(_looks_like_file_option(t) for t in argv):
            raise ProjectError(f"tagmatrix cannot read this line as pip would ({exc})",
                               hint="spell options out in full, and " + _ONE_PER_LINE,
                               where=where) from exc
        return "-", ""  # no file involved: pip judges it in the container
    files = [(FILE_OPTIONS[dest], value) for dest, value in seen if dest in FILE_OPTIONS]
    if not files:
        return "-", ""
    if len(seen) > 1 or rest:
        raise ProjectError("a file option shares its line with "
                           + ("another option" if len(seen) > 1 else f"{rest[0]!r}")
                           + "; pip would read it differently from tagmatrix",
                           hint=_ONE_PER_LINE, where=where)
    return files[0]


def _is_local_path(value: str) -> bool:
    archive = value.endswith((".whl", ".tar.gz", ".zip")) and not _URL.match(value)
    return value.startswith((".", "/", "file:")) or archive


def requirement_files(root: Path, listed: Sequence[str]) -> tuple[str, ...]:
    """The project-relative paths a dependency install needs for ``listed`` requirements
    files: the files, the ``-r``/``-c`` files they include, local ``--find-links``
    folders and local packages they name. A line that installs the project itself
    (``-e .``, ``.[tests]``) is refused: tagmatrix installs the project (install.project)."""
    needed: dict[str, None] = {}
    first = dict.fromkeys(posixpath.normpath(p) for p in listed)
    queued = set(first)
    queue = deque((path, "") for path in first)
    files = lines = 0
    reader = OptionReader()
    while queue:
        relative, origin = queue.popleft()
        files += 1
        if files > MAX_REQUIREMENT_FILES:
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
        for number, line in logical_lines(text):
            here = f"{relative}:{number}"
            lines += 1
            if lines > MAX_REQUIREMENT_LINES:
                raise ProjectError(f"requirements files hold more than {MAX_REQUIREMENT_LINES}"
                                   " lines in all", where=here)
            kind, value = parse_line(line, here, reader)
            if kind in ("r", "c"):
                path = posixpath.normpath(str(folder / value))
                if path not in queued:  # each file is read once, however often included
                    queued.add(path)
                    queue.append((path, here))
            elif kind == "f":
                if not _URL.match(value):
                    _local(root, str(folder / value), here, needed, self_ok=True)
            elif kind in ("e", ""):
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
