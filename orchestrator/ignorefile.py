"""The project's .dockerignore as tagmatrix reads it: the patterns, capped in number.

A .dockerignore lists tens of patterns (VCS folders, virtualenvs, caches, build
output). Every path of the build context is matched against the patterns before the
build and its timeout start, so a pull request carrying tens of thousands of them
could hold the host's CPU for minutes (docker-py's matcher: 20,000 patterns x 2,000
files > 5 min). 1,000 leaves ten times what a project needs and keeps the worst
case to seconds (engine/ignore.py; figures in the README's Security model). Each
pattern's length and their total are capped too (a real .dockerignore is a few KiB):
docker-py's translation is quadratic in a pattern's length (a pattern of 128 K "?"
takes 11 s), and a megabyte of wildcards makes RE2 log hundreds of lines to stderr.
"""

from __future__ import annotations

from pathlib import Path

from .project import ProjectError, dockerignore

MAX_PATTERNS = 1000
MAX_PATTERN_LENGTH = 4096  # characters: the longest path Linux resolves (PATH_MAX)
MAX_PATTERN_BYTES = 128 * 1024  # all patterns together


def read_patterns(root: Path) -> list[str]:
    """The patterns of ``root``/.dockerignore (none if it does not exist); a link out of
    the project, an oversized file, or patterns over the caps above: a ProjectError."""
    patterns = dockerignore(root)
    longest = max(patterns, key=len, default="")
    size = sum(len(p.encode()) for p in patterns)
    if len(patterns) > MAX_PATTERNS:
        what = f"{len(patterns)} patterns, over tagmatrix's cap of {MAX_PATTERNS}"
    elif len(longest) > MAX_PATTERN_LENGTH:
        what = (f"a pattern of {len(longest)} characters ({longest[:20]}...), over "
                f"tagmatrix's cap of {MAX_PATTERN_LENGTH}")
    elif size > MAX_PATTERN_BYTES:
        what = f"{size} bytes of patterns, over tagmatrix's cap of {MAX_PATTERN_BYTES}"
    else:
        return patterns
    raise ProjectError(f"{root / '.dockerignore'} has {what}",
                       hint="real projects need tens of short patterns: merge them with "
                            "wildcards (**/*.log) or exclude a whole folder")
