""".dockerignore patterns matched as docker-py matches them, in time linear in the path.

docker-py (``docker/utils/build.py``: ``PatternMatcher``, a port of moby's fileutils)
decides which paths a build context holds. Its matcher costs files x patterns
*compilations*: ``docker/utils/fnmatch.py`` caches 100 compiled patterns and empties the
cache when it is full, so past 100 patterns every match compiles again (1,000
patterns x 200 files: 29 s here). And Python's ``re`` backtracks: ``*a*a*a*a*a*a*b``
takes 0.08 s on a 40-character name, 1.5 s on a 60-character one, hours on 255.

Here each pattern keeps docker-py's own normalisation (``Pattern``) and translation
(``fnmatch.translate``, lower-cased as docker-py's ``fnmatch`` does), so the same paths
match, but is compiled once, with RE2 (google-re2, Google's binding of the library:
matching is linear in the length of the text whatever the pattern, which Python's
``re`` cannot promise). The patterns go into RE2 sets that say in one pass which
patterns match a path; the last of them decides, as in docker-py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import re2
from docker.utils.build import Pattern
from docker.utils.fnmatch import translate

# RE2's memory budget per set (its default is 8 MiB). Its DFA needs room for about 20
# states of the set's whole program, or it gives up on *every* text, silently (the
# binding returns "no match"): the probe below turns that into an error. 64 MiB holds
# 1,000 patterns of a few hundred characters each.
MAX_MEM = 64 * 1024 * 1024
_PROBE = b"\x00"  # no path holds a NUL byte; the probe pattern matches it (maybe others)


class PatternError(ValueError):
    """A .dockerignore that cannot be matched (an invalid pattern, too complex a set)."""


class _Set:
    """Patterns of one kind in an RE2 set; ``match`` gives the indices (of the whole
    pattern list) of those matching a text."""

    def __init__(self, indices: list[int], regexes: list[str], max_mem: int) -> None:
        options = re2.Options()
        options.max_mem = max_mem
        options.log_errors = False  # errors become PatternError, not lines on stderr
        self._set = re2.Set.FullMatchSet(options)
        self._indices = indices
        self._set.Add(re2.escape(_PROBE))
        for regex in regexes:
            try:
                self._set.Add(regex)
            except re2.error as exc:
                raise PatternError(f"{regex!r} is not a pattern RE2 accepts ({exc})") from exc
        try:
            self._set.Compile()
            ready = 0 in (self._set.Match(_PROBE) or ())
        except re2.error:
            ready = False
        if not ready:
            raise PatternError(f"{len(regexes)} patterns are too complex to match within "
                               f"{max_mem / 2**20:g} MiB of memory")

    def match(self, text: bytes) -> list[int]:
        return [self._indices[i - 1] for i in self._set.Match(text) or () if i]


class Matcher:
    """docker-py's ``PatternMatcher(patterns)``: :meth:`excluded` is its ``matches``,
    :meth:`may_hold_exception` the test its ``walk`` makes before skipping a folder."""

    def __init__(self, patterns: Sequence[str], *, max_mem: int = MAX_MEM) -> None:
        found = [p for p in (Pattern(text) for text in patterns) if p.dirs]
        found.append(Pattern("!.dockerignore"))  # docker-py always sends it
        self._exclusion = [p.exclusion for p in found]
        self._exceptions = [p.cleaned_pattern for p in found if p.exclusion]
        regexes = [translate(_collapse(p.cleaned_pattern.lower())) for p in found]
        everything = list(range(len(found)))
        self._whole = _Set(everything, regexes, max_mem)
        # docker-py also matches a pattern of N components against the first N components
        # of the path's folder: one set per N
        by_depth: dict[int, list[int]] = {}
        for i, pattern in enumerate(found):
            by_depth.setdefault(len(pattern.dirs), []).append(i)
        self._prefix = {depth: _Set(indices, [regexes[i] for i in indices], max_mem)
                        for depth, indices in by_depth.items()}

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, "/"-separated) is left out of the context."""
        lowered = path.lower()
        hits = self._whole.match(_text(lowered))
        folders = [part for part in lowered.split("/")[:-1] if part and part != "."]
        for depth in range(1, len(folders) + 1):
            found = self._prefix.get(depth)
            if found is not None:
                hits += found.match(_text("/".join(folders[:depth])))
        return bool(hits) and not self._exclusion[max(hits)]

    def may_hold_exception(self, folder: str) -> bool:
        """Whether an excluded ``folder`` must still be walked: a "!" pattern starts with
        its path (docker-py's test, a plain string prefix, kept as it is)."""
        return any(pattern.startswith(folder) for pattern in self._exceptions)


_STARS = re.compile(r"\*{3,}")
_REPEATED = re.compile(r"(?<!\*)\*\*/(?=\*\*)")
_CLASS = re.compile(r"\[!?\]?[^\]]*\]")  # a class as translate reads it: copied as is


def _collapse(glob: str) -> str:
    """``glob`` with runs of wildcards shortened to what translates to the same set of
    paths, so that RE2 gets one ``(.*/)?`` where a hostile pattern wrote fifty (a run of
    them makes the set's DFA slow: 5 ms per path for 1,000 such patterns).

    translate reads ``**`` pairs first: an even run of stars is ``(.*/)?`` repeated
    (``.*`` at the end), an odd one the same plus ``[^/]*``; and ``(.*/)?`` twice is
    ``(.*/)?``. So runs become ``**`` or ``***``, and ``**/`` before another ``**`` goes
    (``(.*/)?(.*/)?`` and ``(.*/)?.*`` are what the second alone matches). Classes are
    copied as they are."""
    out, start = [], 0
    for found in _CLASS.finditer(glob):
        out += [_collapse_stars(glob[start:found.start()]), found.group()]
        start = found.end()
    out.append(_collapse_stars(glob[start:]))
    return "".join(out)


def _collapse_stars(text: str) -> str:
    text = _STARS.sub(lambda m: "**" if len(m.group()) % 2 == 0 else "***", text)
    while True:  # a "**/" of its own (not the end of "***/": that is "**" and "*/")
        shorter = _REPEATED.sub("", text)
        if shorter == text:
            return text
        text = shorter


def _text(path: str) -> bytes:
    # A name that is not UTF-8 (surrogate escapes) cannot be written in a .dockerignore
    # read as UTF-8 either: its odd bytes become "?", which wildcards match.
    return path.encode("utf-8", "replace")
