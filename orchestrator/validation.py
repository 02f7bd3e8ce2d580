"""Turn JSON Schema violations and the YAML float trap into one-line ConfigErrors.

jsonschema's own messages ("Additional properties are not allowed ('pyton'
was unexpected)") name neither the line nor the fix; here each validator kind
gets a message that says what was expected, and unknown keys get a
did-you-mean from :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, Location

if TYPE_CHECKING:
    from jsonschema import ValidationError
from .source import KeyPath, Source, format_path

_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "an integer",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "nothing"}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _expected(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return _TYPE_NAMES.get(kinds, kinds)
    if isinstance(kinds, list):
        return " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in kinds)
    if "oneOf" in schema:
        return " or ".join(_expected(s) for s in schema["oneOf"])
    return "a valid value"


def _key_location(source: Source, key_path: KeyPath) -> Location | None:
    """Where a key itself is written (its value may start on another line)."""
    location = source.location(key_path)
    mark = source.marks.get((*key_path, "<key>"))
    if mark is None or location is None:
        return location
    return Location(location.file, mark.line, mark.column)


def _error_to_config(source: Source, error: ValidationError) -> ConfigError:
    path: KeyPath = tuple(error.absolute_path)
    key = format_path(path)
    validator = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value
    instance: Any = error.instance
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        bad = str(unknown[0]) if unknown else "?"
        close = difflib.get_close_matches(bad, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "allowed keys: " + ", ".join(allowed)
        key_path: KeyPath = (*path, bad)
        return ConfigError(f"unknown key '{bad}'", location=_key_location(source, key_path),
                           key=format_path(key_path), hint=hint)
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema reports a bad key at its mapping; point at the key itself
        name = str(instance)
        key_path = (*path, name)
        return ConfigError(f"'{name}' is not a valid name here (letters, digits and _, not "
                           "starting with a digit)", location=_key_location(source, key_path),
                           key=format_path(key_path))
    location = source.location(path)
    if validator == "required":
        missing = next((r for r in expected if r not in instance), "?")
        return ConfigError(f"missing required key '{missing}'", location=location, key=key,
                           hint=f"add '{missing}:' here (see README: matrix.yaml)")
    if validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in expected], n=1)
        return ConfigError(
            f"expected {_expected(schema)}, got {_describe(error.instance)}",
            location=location, key=key,
            hint=f"did you mean '{close[0]}'?" if close else None)
    if validator in ("type", "oneOf", "anyOf"):
        return ConfigError(f"expected {_expected(schema)}, got {_describe(error.instance)}",
                           location=location, key=key)
    if validator == "minItems":
        return ConfigError("must not be empty", location=location, key=key,
                           hint="list at least one value, or remove the key")
    if validator == "minProperties":
        return ConfigError("must not be empty", location=location, key=key)
    if validator == "uniqueItems":
        return ConfigError("lists the same value twice", location=location, key=key,
                           hint="remove the duplicate")
    if validator in ("maximum", "exclusiveMaximum"):
        bound = "at most" if validator == "maximum" else "less than"
        return ConfigError(f"must be {bound} {expected}, got {error.instance}",
                           location=location, key=key)
    if validator in ("minimum", "exclusiveMinimum"):
        bound = "at least" if validator == "minimum" else "greater than"
        return ConfigError(f"must be {bound} {expected}, got {error.instance}",
                           location=location, key=key)
    if validator == "minLength":
        return ConfigError("must not be an empty string", location=location, key=key)
    return ConfigError(error.message, location=location, key=key)


def _sort_key(source: Source, error: ValidationError) -> tuple[int, int]:
    loc = source.location(tuple(error.absolute_path))
    return (loc.line, loc.column) if loc else (0, 0)


def check_schema(source: Source, data: Any, schema: dict[str, Any]) -> None:
    """Raise the first (in file order) schema violation as a ConfigError.

    A document this schema already accepted (the same values, byte for byte as JSON)
    is not checked again: importing jsonschema is most of what `tagmatrix validate`
    and `plan` cost (about 40 ms of 100), and CI asks the same file again and again.
    Only acceptances are remembered, per user (see :func:`_accepted`)."""
    accepted = _accepted(data, schema)
    if accepted is not None and accepted.is_file() and not accepted.is_symlink():
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(data))
    if not errors:
        if accepted is not None:
            _remember(accepted)
        return
    # For oneOf/anyOf, the most specific sub-error is the useful one.
    best = [jsonschema.exceptions.best_match([e]) or e for e in errors]
    first = min(best, key=lambda e: _sort_key(source, e))
    error = _error_to_config(source, first)
    if len(errors) > 1:
        error.message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        error.args = (error.message,)
    raise error


MAX_ACCEPTED = 256  # remembered documents per user; the oldest go first


def _accepted(data: Any, schema: dict[str, Any]) -> Path | None:
    """The marker file of this document under this schema (and tagmatrix version), in
    the user's own cache folder; None when the values do not serialise."""
    from . import __version__
    from .catalogue import cache_dir

    try:
        text = json.dumps([__version__, schema, data], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # a date, a NaN: just validate it
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return cache_dir() / "accepted" / f"uid-{os.getuid()}" / digest


def _remember(marker: Path) -> None:
    """Create the marker (best effort: a cache that cannot be written only costs time)."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        known = sorted(marker.parent.iterdir(), key=lambda p: p.stat().st_mtime)
        for old in known[:-MAX_ACCEPTED]:
            old.unlink()
    except OSError:
        pass


def check_float_trap(source: Source, paths: Iterable[KeyPath]) -> None:
    """Unquoted versions: ``python: [3.10]`` is the number 3.1 to YAML."""
    for path in paths:
        mark = source.marks.get(path)
        if mark is None or not mark.plain or mark.raw is None:
            continue
        value = _lookup(source.data, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        raw = mark.raw
        if str(value) != raw:
            message = f"{raw} is read by YAML as the number {value}, not the version {raw}"
        else:
            message = f"{raw} is a YAML number, not a version string"
        raise ConfigError(message, location=source.location(path), key=format_path(path),
                          hint=f'quote it: "{raw}"')


def _lookup(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def check_finite(source: Source, data: Any, path: KeyPath = ()) -> None:
    """YAML's .nan and .inf pass every comparison a schema makes: refuse them."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{data} is not a finite number", location=source.location(path),
                          key=format_path(path), hint="write a number of seconds, e.g. 600")
    if isinstance(data, dict):
        for key, value in data.items():
            check_finite(source, value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            check_finite(source, value, (*path, index))
