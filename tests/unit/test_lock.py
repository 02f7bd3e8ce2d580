"""matrix.lock read and checked against the plan, without a registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.errors import StaleLock
from orchestrator.lock import check, read
from orchestrator.plan import make_plan
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]


def test_a_lock_that_misses_a_cell_is_named_by_its_own_path(write: Write,
                                                             tmp_path: Path) -> None:
    config = load_config(write("matrix.yaml", 'matrix: {python: ["3.12", "3.13"]}\n'))
    given = tmp_path / "elsewhere" / "release.lock"
    given.parent.mkdir()
    given.write_text(json.dumps({"version": 1, "registry": "docker.io",
                                 "repository": "library/python",
                                 "images": {"3.12": {"digest": "sha256:" + "a" * 64}}}))
    lock = read(given)
    with pytest.raises(StaleLock, match=rf"^{given} has no digest for 3.13\n"):
        check(lock, config, make_plan(config, Catalogue.builtin()).jobs)
    with pytest.raises(StaleLock, match=rf"^{tmp_path / 'missing.lock'}: no lock file\n"):
        read(tmp_path / "missing.lock")
