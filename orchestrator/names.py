"""Names a user types, checked where they are read: image references (Docker's
reference grammar), axis and environment names, and the bounds of derived names.

The reference grammar is Docker's own (distribution/reference's regexp.go):
a registry host (a domain or IP, optional port), path components of lowercase
letters and digits joined by ``.``, ``_``, ``__`` or dashes, a tag of up to 128
word characters, dots and dashes.
"""

from __future__ import annotations

import re
import unicodedata

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
REGISTRY = re.compile(rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+\])"
                      r"(?::[0-9]{1,5})?$")
SEPARATOR = r"[._]|__|-+"  # between a path part's letters and digits
_PATH_PART = rf"[a-z0-9]+(?:(?:{SEPARATOR})[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{_PATH_PART}(?:/{_PATH_PART})*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
AXIS = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_REPOSITORY = 255
MAX_VALUE = 200  # characters of one matrix value


def registry_problem(text: str) -> str | None:
    """Why ``text`` is not a registry host[:port], or None."""
    if not REGISTRY.match(text):
        return (f"{text!r} is not a registry host (a domain or IP address, an optional "
                ":port; no scheme, path or spaces)")
    port = text.rsplit(":", 1)[1] if ":" in text and not text.endswith("]") else None
    if port is not None and not 0 < int(port) < 65536:
        return f"{text!r}: port {port} is out of range"
    return None


def repository_problem(text: str) -> tuple[str, str | None] | None:
    """Why ``text`` is not a repository path, and a fix when there is an obvious one."""
    if len(text) > MAX_REPOSITORY:
        return f"the repository is longer than {MAX_REPOSITORY} characters", None
    if REPOSITORY.match(text):
        return None
    lower = text.lower()
    fix = lower if REPOSITORY.match(lower) else None
    return (f"{text!r} is not a repository name (lowercase letters, digits, and . _ - "
            "between them, path parts separated by /)", fix)


def tag_problem(text: str) -> str | None:
    if not TAG.match(text):
        return f"{text!r} is not an image tag (up to 128 letters, digits, _ . -)"
    return None


def value_problem(text: str) -> str | None:
    """Matrix values become cell ids, variables, build args and report text: one line of
    printable text (no control characters: a NUL cannot be passed in an environment
    variable, an escape or a carriage return would rewrite the terminal's lines)."""
    bad = next((c for c in text if unicodedata.category(c) in {"Cc", "Zl", "Zp"}), None)
    if len(text) > MAX_VALUE or bad is not None:
        found = f" ({bad!r} found)" if bad is not None else ""
        return (f"a matrix value is one line of at most {MAX_VALUE} printable characters"
                f"{found}")
    return None


def axis_problem(name: str) -> str | None:
    """Axis names become MATRIX_<AXIS> variables and build args: identifiers only."""
    if not AXIS.match(name):
        return (f"{name!r} is not an axis name (a letter, then letters, digits or _; at "
                "most 64): it becomes the variable MATRIX_" + name.upper())
    return None
