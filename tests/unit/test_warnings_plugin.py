"""The container's warnings plugin, run inside real pytest sessions (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from orchestrator.container import WARNINGS_PLUGIN, WARNINGS_PLUGIN_NAME
from orchestrator.container.tagmatrix_warnings import ENV, MAX_MESSAGE, MAX_WARNINGS

LEGACY = """\
import os
import warnings


def convert(value):
    if os.environ.get("LEGACY_MODE") == "1":
        warnings.warn("convert() in legacy mode is deprecated", DeprecationWarning)
    return value
"""

TESTS = """\
import warnings

from pkg.legacy import convert

warnings.warn("imported at collection", UserWarning)


def test_once():
    assert convert(1) == 1


def test_three_times():
    for value in range(3):
        assert convert(value) == value


def test_object():
    warnings.warn(f"leaked {object()!r}", UserWarning)
"""


def _session(project: Path, *, ledger: Path | None, env: dict[str, str] | None = None,
             args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST_", "TAGMATRIX_"))}
    environ["PYTHONPATH"] = str(WARNINGS_PLUGIN.parent)
    if ledger is not None:
        environ[ENV] = str(ledger)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", WARNINGS_PLUGIN_NAME, "-p",
         "no:cacheprovider", "--rootdir", str(project), *args],
        cwd=project, env=environ, capture_output=True, text=True, check=False, timeout=120)


def _project(tmp_path: Path, tests: str = TESTS) -> Path:
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (project / "pkg" / "legacy.py").write_text(LEGACY, encoding="utf-8")
    (project / "test_convert.py").write_text(tests, encoding="utf-8")
    return project


def _by_message(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["message"]: w for w in document["warnings"]}


def test_a_warning_raised_only_in_one_mode_is_recorded_with_its_tests(tmp_path: Path) -> None:
    project = _project(tmp_path)
    ledger = tmp_path / "out" / "warnings.json"
    ledger.parent.mkdir()
    done = _session(project, ledger=ledger, env={"LEGACY_MODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(ledger.read_text(encoding="ascii"))
    assert document["format"] == 1
    assert document["python"] == sys.version.split()[0]
    warnings = _by_message(document)
    legacy = warnings["convert() in legacy mode is deprecated"]
    assert (legacy["category"], legacy["filename"], legacy["lineno"]) == \
        ("DeprecationWarning", "pkg/legacy.py", 7)
    assert (legacy["count"], legacy["test_count"], legacy["when"]) == (4, 2, ["runtest"])
    assert legacy["tests"] == ["test_convert.py::test_three_times", "test_convert.py::test_once"]
    collected = warnings["imported at collection"]
    assert (collected["category"], collected["when"], collected["lineno"]) == \
        ("UserWarning", ["collect"], 5)
    leaked = next(m for m in warnings if m.startswith("leaked"))
    assert "0x..." in leaked  # addresses differ on every run
    assert "0x7" not in leaked
    assert not list(ledger.parent.glob("*.tmp*"))

    done = _session(project, ledger=ledger, env={"LEGACY_MODE": "0"})
    assert done.returncode == 0
    assert "convert() in legacy mode is deprecated" not in \
        _by_message(json.loads(ledger.read_text(encoding="ascii")))


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_nothing_is_written_without_the_variable(tmp_path: Path) -> None:
    project = _project(tmp_path)
    before = _files(tmp_path)
    done = _session(project, ledger=None, env={"LEGACY_MODE": "1"})
    assert done.returncode == 0
    assert "6 warnings" in done.stdout  # the warnings were there, and nothing recorded them
    assert _files(tmp_path) == before


def test_the_ledger_is_bounded(tmp_path: Path) -> None:
    project = _project(tmp_path, tests=textwrap.dedent(f"""\
        import warnings

        def test_flood():
            for i in range({MAX_WARNINGS + 100}):
                warnings.warn(f"distinct {{i}}", UserWarning)
            warnings.warn("x" * 100_000, UserWarning)
    """))
    ledger = tmp_path / "warnings.json"
    done = _session(project, ledger=ledger)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(ledger.read_text(encoding="ascii"))
    assert len(document["warnings"]) == MAX_WARNINGS
    assert document["dropped"] == 101
    assert all(len(w["message"]) <= MAX_MESSAGE for w in document["warnings"])
    assert ledger.stat().st_size < 1024 * 1024


def test_a_ledger_that_cannot_be_written_does_not_fail_the_tests(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _session(project, ledger=tmp_path / "missing" / "warnings.json",
                    env={"LEGACY_MODE": "1"})
    assert done.returncode == 0
    assert "tagmatrix_warnings: cannot write" in done.stderr
