"""The official python image's tag grammar and the catalogue of published tags.

A tag is ``<version>[-<variant>]``: versions ``3``, ``3.14``, ``3.14.4``,
``3.15-rc``, ``3.15.0b3``, ``latest``; variants ``slim``, ``slim-trixie``,
``bookworm``, ``alpine``, ``alpine3.23``, ``windowsservercore``,
``windowsservercore-ltsc2022`` ... and the empty variant (the full default
image). The built-in catalogue is docker-library's ``versions.json``; a
catalogue refreshed from a registry (``tagmatrix tags --refresh``) is the exact
set of tags that registry serves.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEBIAN_SUITES = ("trixie", "bookworm", "bullseye", "forky")

_VERSION = re.compile(
    r"^(?:(?P<latest>latest)|(?P<major>3)(?:\.(?P<minor>\d{1,2})"
    r"(?:(?P<rc>-rc)|\.(?P<patch>\d{1,3})(?P<pre>(?:a|b|rc)\d{1,2})?)?)?)$"
)
_VARIANT = re.compile(
    r"^(?:"
    r"(?P<slim>slim)(?:-(?P<slim_suite>[a-z]+))?"
    r"|(?P<alpine>alpine)(?P<alpine_version>3\.\d{1,2})?"
    r"|(?P<windows>windowsservercore)(?:-(?P<ltsc>ltsc\d{4}))?"
    r"|(?P<suite>[a-z]+)"
    r")$"
)


class TagSyntaxError(ValueError):
    """A version or variant that does not fit the official tag grammar."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


@dataclass(frozen=True, order=True)
class Version:
    """A parsed version part of a tag."""

    text: str
    minor: int | None = None  # None for "3" and "latest"
    patch: int | None = None
    prerelease: str | None = None  # "b3"
    rc_family: bool = False  # "3.15-rc"


def parse_version(text: str) -> Version:
    """Parse the version part of a tag, or raise :class:`TagSyntaxError`."""
    match = _VERSION.match(text)
    if not match:
        hint = None
        cleaned = re.sub(r"^(?:py(?:thon)?[-:]?|v)", "", text.strip().lower())
        if cleaned != text and _VERSION.match(cleaned):
            hint = cleaned
        raise TagSyntaxError(
            f"{text!r} is not a python image version (expected 3, 3.X, 3.X.Y, 3.X-rc, "
            "3.X.YbN or latest)",
            hint,
        )
    minor = int(match["minor"]) if match["minor"] else None
    patch = int(match["patch"]) if match["patch"] else None
    return Version(text, minor, patch, match["pre"], bool(match["rc"]))


@dataclass(frozen=True)
class Variant:
    """A parsed variant part of a tag."""

    text: str
    kind: str  # "default", "slim", "debian", "alpine", "windows"
    detail: str | None = None  # suite, alpine version or ltsc release

    @property
    def platform(self) -> str:
        return "windows" if self.kind == "windows" else "linux"


def parse_variant(text: str) -> Variant:
    """Parse the variant part of a tag, or raise :class:`TagSyntaxError`."""
    if text == "":
        return Variant("", "default")
    match = _VARIANT.match(text)
    if match and match["slim"]:
        suite = match["slim_suite"]
        if suite is None or suite in DEBIAN_SUITES:
            return Variant(text, "slim", suite)
    elif match and match["alpine"]:
        return Variant(text, "alpine", match["alpine_version"])
    elif match and match["windows"]:
        return Variant(text, "windows", match["ltsc"])
    elif match and match["suite"] in DEBIAN_SUITES:
        return Variant(text, "debian", match["suite"])
    known = ["slim", "alpine", "windowsservercore", *DEBIAN_SUITES,
             *(f"slim-{s}" for s in DEBIAN_SUITES), "windowsservercore-ltsc2022",
             "windowsservercore-ltsc2025", "alpine3.23", "alpine3.24"]
    close = difflib.get_close_matches(text, known, n=1)
    raise TagSyntaxError(
        f"{text!r} is not a python image variant (expected slim, slim-<debian>, <debian>, "
        "alpine, alpine3.N, windowsservercore[-ltscYYYY] or empty)",
        close[0] if close else None,
    )


def tag_for(version: str, variant: str) -> str:
    """The image tag of a (version, variant) pair: ``3.12`` + ``slim`` -> ``3.12-slim``."""
    if version == "latest":
        return variant or "latest"
    return f"{version}-{variant}" if variant else version


# A bare variant name and the published variants it stands for, by prefix:
# "slim" for "slim-trixie", "alpine" for "alpine3.23" ...
_ALIAS_PREFIX = {"slim": "slim-", "alpine": "alpine", "windowsservercore": "windowsservercore"}


@dataclass(frozen=True)
class Release:
    """One maintained minor version (or pre-release family) of the image."""

    family: str  # "3.14" or "3.15-rc"
    version: str  # "3.14.6" / "3.15.0b3"
    variants: tuple[str, ...]  # as published: "slim-trixie", "windowsservercore-ltsc2025" ...

    @property
    def minor(self) -> int:
        return int(self.family.split("-")[0].split(".")[1])

    @property
    def prerelease(self) -> bool:
        return self.family.endswith("-rc")

    def patch_tuple(self) -> tuple[int, int]:
        m = re.match(r"3\.\d+\.(\d+)(?:(a|b|rc)(\d+))?$", self.version)
        if not m:
            return (0, 0)
        # a final release sorts after its pre-releases
        pre = {"a": -3, "b": -2, "rc": -1}.get(m[2] or "", 0)
        return (int(m[1]), pre * 100 + int(m[3] or 0))

    def has_alias(self, alias: str) -> bool:
        """Whether a bare variant name (``slim``, ``alpine``, ``windowsservercore``) is
        published: it is whenever a variant it stands for is."""
        return any(v.startswith(_ALIAS_PREFIX[alias]) for v in self.variants)

    def has_variant(self, variant: Variant) -> bool:
        """Whether this release publishes ``variant`` (including its aliases)."""
        if variant.kind == "default":
            return any(v in DEBIAN_SUITES for v in self.variants)
        if variant.detail is None and variant.text in _ALIAS_PREFIX:
            return self.has_alias(variant.text)
        return variant.text in self.variants


@dataclass(frozen=True)
class Availability:
    """Whether a tag is published, and why not when it is not."""

    published: bool
    reason: str = ""
    resolved_version: str | None = None  # e.g. 3.15-rc -> 3.15.0b3 (catalogue's claim)


class UnknownVersion(ValueError):
    """A well-formed version the catalogue does not know (e.g. 3.16, 3.14.99)."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


@dataclass(frozen=True)
class Catalogue:
    """What the official image publishes; built-in or refreshed from a registry."""

    releases: tuple[Release, ...]
    source: str
    tags: frozenset[str] | None = None  # exact tag set when refreshed from a registry

    @classmethod
    def builtin(cls) -> Catalogue:
        # a file of the package, not importlib.resources: that import costs ~25 ms at
        # start-up, and tagmatrix is installed as files (never from a zip)
        text = (Path(__file__).parent / "data" / "python-versions.json").read_text()
        return cls.from_versions_json(json.loads(text),
                                      source="built-in (docker-library versions.json)")

    @classmethod
    def from_versions_json(cls, data: dict[str, Any], *, source: str) -> Catalogue:
        releases = [
            Release(family, str(info["version"]),
                    tuple(str(v).split("/")[-1] for v in info.get("variants", [])))
            for family, info in data.items()
        ]
        releases.sort(key=lambda r: (r.minor, r.prerelease))
        return cls(tuple(releases), source)

    @classmethod
    def from_tags(cls, tags: set[str] | frozenset[str], *, source: str) -> Catalogue:
        """A catalogue that is exactly the tags a registry serves."""
        return cls(cls.builtin().releases, source, frozenset(tags))

    def versions(self) -> list[str]:
        """The version parts of the known tags (refreshed catalogue) or the families."""
        if self.tags is None:
            return self.families()
        found: set[str] = set()
        for tag in self.tags:
            for candidate in (tag, *(tag[:i] for i, ch in enumerate(tag) if ch == "-")):
                try:
                    parse_version(candidate)
                except TagSyntaxError:
                    continue
                found.add(candidate)
                break
        return sorted(found)

    def check_version(self, version: Version) -> None:
        """Raise :class:`UnknownVersion` if no published tag has this version."""
        if self.tags is None:
            self.release_for(version)
            return
        text = version.text
        if text == "latest" or any(t == text or t.startswith(text + "-") for t in self.tags):
            return
        close = difflib.get_close_matches(text, self.versions(), n=1, cutoff=0.6)
        raise UnknownVersion(f"python {text} is not in the catalogue ({self.source})",
                             close[0] if close else None)

    def families(self) -> list[str]:
        return [r.family for r in self.releases]

    def latest_stable(self) -> Release:
        stable = [r for r in self.releases if not r.prerelease]
        return stable[-1]

    def release_for(self, version: Version) -> Release:
        """The release a version belongs to; :class:`UnknownVersion` if none."""
        if version.minor is None:  # "3" and "latest" follow the newest stable
            return self.latest_stable()
        family = f"3.{version.minor}" + ("-rc" if version.rc_family else "")
        by_family = {r.family: r for r in self.releases}
        release = by_family.get(family)
        if release is None and version.patch is not None:
            release = by_family.get(f"3.{version.minor}-rc")  # 3.15.0b3 lives in 3.15-rc
        if release is None:
            close = difflib.get_close_matches(family, self.families(), n=1, cutoff=0.6)
            if f"3.{version.minor}-rc" in by_family:
                close = [f"3.{version.minor}-rc"]
            known = f"{self.families()[0]} ... {self.families()[-1]}"
            raise UnknownVersion(
                f"python {version.text} is not in the catalogue ({self.source}; known: {known})",
                close[0] if close else None,
            )
        if version.patch is not None:
            asked = Release(release.family, version.text, ()).patch_tuple()
            if asked > release.patch_tuple():
                raise UnknownVersion(
                    f"python {version.text} is not published yet "
                    f"(newest {release.family} is {release.version})",
                    release.version,
                )
        return release

    def availability(self, version: Version, variant: Variant) -> Availability:
        """Whether ``python:<version>-<variant>`` is published, with the reason."""
        tag = tag_for(version.text, variant.text)
        if self.tags is not None:
            if tag in self.tags:
                return Availability(True)
            return Availability(False, f"python:{tag} is not published ({self.source})")
        release = self.release_for(version)
        if release.has_variant(variant):
            resolved = release.version if version.patch is None else version.text
            return Availability(True, resolved_version=resolved)
        if variant.kind == "windows":
            first = next((r.family for r in self.releases
                          if r.has_alias("windowsservercore")), None)
            why = f"{release.family} has no Windows images" + (
                f" (they start at {first})" if first else "")
        else:
            why = f"{release.family} publishes no {variant.text or 'default'} variant"
        return Availability(False, f"python:{tag} is not published: {why}")

    def published_tags(self) -> list[str]:
        """Every tag the catalogue knows (for `tagmatrix tags`)."""
        if self.tags is not None:
            return sorted(self.tags)
        out: list[str] = []
        for release in self.releases:
            names = {"", *release.variants,
                     *(alias for alias in _ALIAS_PREFIX if release.has_alias(alias))}
            for ver in (release.family, release.version):
                out.extend(tag_for(ver, n) for n in sorted(names))
        return out


_RUNNING = re.compile(r"(\d+)\.(\d+)\.(\d+)((?:a|b|rc)\d+)?\+?")


@dataclass(frozen=True)
class Verdict:
    """Whether an interpreter belongs to a tag; ``message`` is the error when it does not,
    or a warning when it does but only loosely (a stale catalogue)."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class InterpreterCheck:
    """Which interpreters a cell's tag allows: every cell proves it ran one of them
    (a Dockerfile with a hard-coded FROM would otherwise report another
    interpreter's results under this cell's name)."""

    tag: str  # the version part: "3.13", "3.13.1", "3.15-rc", "3.15.0b3", "3", "latest"
    newest: str | None = None  # "3" / "latest": the catalogue's newest stable family

    def judge(self, running: str) -> Verdict:
        """``running``: the version the interpreter reported (``sys.version``'s first word)."""
        match = _RUNNING.fullmatch(running)
        if not match:
            return Verdict(False, f"the cell's interpreter reported no usable version "
                                  f"({running or 'nothing'!s}), so it cannot prove it is "
                                  f"{self.tag}")
        major, minor, patch, pre = int(match[1]), int(match[2]), int(match[3]), match[4]
        wrong = Verdict(False, f"the image ran Python {running}, but this cell is {self.tag}")
        if major != 3:
            return wrong
        version = parse_version(self.tag)
        if version.minor is None:  # "3" / "latest": the newest stable release
            if self.newest and f"{major}.{minor}" != self.newest:
                return Verdict(True, f"{self.tag} ran Python {running}, the catalogue's newest "
                                     f"stable release is {self.newest}: the catalogue or the "
                                     "registry is stale (tagmatrix tags --refresh)")
            return Verdict(True)
        if minor != version.minor:
            return wrong
        if version.rc_family and not pre:
            return Verdict(False, f"the image ran Python {running}, a final release, but this "
                                  f"cell is {self.tag} (a pre-release)")
        if version.patch is not None and (patch, pre) != (version.patch, version.prerelease):
            return wrong
        return Verdict(True)
