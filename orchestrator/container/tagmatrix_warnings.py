"""tagmatrix's warnings ledger: a pytest plugin that runs inside the test container.

Every warning pytest captures (``pytest_warning_recorded``) is counted by
category, message and the location that emitted it (``filename:lineno``, as the
warning names it), with the tests that hit it. At the end of the session the
ledger is written as JSON to the path in ``TAGMATRIX_WARNINGS_FILE`` (nothing is
recorded when it is unset). tagmatrix copies this file into the container and
loads it with ``-p tagmatrix_warnings``.

Standard library only, no tagmatrix imports: it runs on the cell's interpreter
(Python 3.10-3.15) under the project's pytest (>= 7). Bounded: at most 500
distinct warnings, 500 characters of message, 20 test ids listed (200 counted)
per warning, 1 MiB of JSON; what is left out is counted. Locations are made
comparable across interpreters: a file in site-packages is named from there,
the standard library as ``<stdlib>/...``, the project relative to pytest's rootdir.
With pytest-xdist only the controller writes (workers forward their warnings).
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

ENV = "TAGMATRIX_WARNINGS_FILE"
FORMAT = 1
MAX_WARNINGS = 500
MAX_MESSAGE = 500
MAX_LISTED_TESTS = 20
MAX_COUNTED_TESTS = 200
MAX_BYTES = 1024 * 1024
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")  # object addresses differ on every run


def _category(kind: type[Warning]) -> str:
    module = getattr(kind, "__module__", "builtins")
    name = getattr(kind, "__qualname__", str(kind))
    return name if module == "builtins" else f"{module}.{name}"


class Ledger:
    """The warnings of one session, deduplicated and bounded."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.enabled = bool(path)
        self.root: str | None = None
        self.entries: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        self.dropped = 0  # occurrences of distinct warnings past MAX_WARNINGS
        paths = sysconfig.get_paths()
        self._stdlib = [p.replace("\\", "/").rstrip("/") + "/"
                        for p in {paths.get("stdlib"), paths.get("platstdlib")} if p]

    def where(self, filename: str) -> str:
        path = str(filename).replace("\\", "/")
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path:
                return path.rsplit(marker, 1)[1]
        if self.root and path.startswith(self.root + "/"):
            return path[len(self.root) + 1:]
        for prefix in self._stdlib:
            if path.startswith(prefix):
                return "<stdlib>/" + path[len(prefix):]
        return path[-300:]

    def add(self, message: warnings.WarningMessage, when: str, nodeid: str) -> None:
        text = _ADDRESS.sub("0x...", str(message.message))
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE - 3] + "..."
        key = (_category(message.category), text, self.where(message.filename),
               int(message.lineno or 0))
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= MAX_WARNINGS:
                self.dropped += 1
                return
            entry = self.entries[key] = {"count": 0, "when": set(), "tests": {}}
        entry["count"] += 1
        entry["when"].add(str(when))
        tests: dict[str, int] = entry["tests"]
        if nodeid and (nodeid in tests or len(tests) < MAX_COUNTED_TESTS):
            tests[nodeid] = tests.get(nodeid, 0) + 1

    def document(self, pytest_version: str) -> dict[str, Any]:
        ordered = sorted(self.entries.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
        items = []
        for (category, text, filename, lineno), entry in ordered:
            tests = entry["tests"]
            items.append({
                "category": category, "message": text, "filename": filename,
                "lineno": lineno, "count": entry["count"], "when": sorted(entry["when"]),
                "tests": sorted(tests, key=lambda t: (-tests[t], t))[:MAX_LISTED_TESTS],
                "test_count": len(tests), "tests_capped": len(tests) >= MAX_COUNTED_TESTS,
            })
        head = {"format": FORMAT, "python": sys.version.split()[0], "pytest": pytest_version,
                "implementation": sys.implementation.name}
        kept: list[dict[str, Any]] = []
        size = len(json.dumps(head)) + 200
        for item in items:
            size += len(json.dumps(item)) + 2
            if size > MAX_BYTES:
                break
            kept.append(item)
        dropped = self.dropped + sum(i["count"] for i in items[len(kept):])
        return {**head, "warnings": kept, "distinct": len(items), "dropped": dropped}

    def write(self, pytest_version: str) -> None:
        if not (self.enabled and self.path):
            return
        data = json.dumps(self.document(pytest_version), ensure_ascii=True)
        target = Path(self.path)
        temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
        try:
            temporary.write_text(data, encoding="ascii")
            temporary.replace(target)
        except OSError as exc:  # never fail the tests over the ledger
            sys.stderr.write(f"tagmatrix_warnings: cannot write {self.path}: {exc}\n")


LEDGER = Ledger(os.environ.get(ENV))


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller keeps the ledger
        LEDGER.enabled = False
        return
    root = getattr(config, "rootpath", None) or getattr(config, "rootdir", None)
    if root is not None:
        LEDGER.root = str(root).replace("\\", "/").rstrip("/")


def pytest_warning_recorded(warning_message: warnings.WarningMessage, when: str,
                            nodeid: str, location: tuple[str, int, str] | None) -> None:
    if LEDGER.enabled:
        LEDGER.add(warning_message, when, nodeid)


def pytest_unconfigure(config: pytest.Config) -> None:
    import pytest

    LEDGER.write(getattr(pytest, "__version__", ""))
