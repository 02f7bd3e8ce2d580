"""The digest that lets an unchanged image be used without building (engine/reuse.py):
equal inputs give one digest, and any input that changes gives another."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine.reuse import inputs_digest

INPUTS: dict[str, Any] = {
    "kind": "install", "dockerfile": "FROM python:3.12-slim\n",
    "files": {"tagmatrix/install.py": b"print()\n", "tagmatrix/step-deps.json": b"{}"},
    "snapshot": "sha256:aaaa", "base_id": "sha256:bbbb", "args": {"MATRIX_DEPS": "min"},
    "labels": {"org.tagmatrix.build-key": "k"}}


def test_equal_inputs_give_one_digest_whatever_the_order() -> None:
    shuffled = {**INPUTS, "files": dict(reversed(list(INPUTS["files"].items())))}
    assert inputs_digest(**INPUTS) == inputs_digest(**shuffled)
    assert inputs_digest(**INPUTS).startswith("sha256:")


@pytest.mark.parametrize(("key", "value"), [
    ("kind", "template"),
    ("dockerfile", "FROM python:3.13-slim\n"),
    ("files", {"tagmatrix/install.py": b"print(1)\n", "tagmatrix/step-deps.json": b"{}"}),
    ("files", {"tagmatrix/install.py": b"print()\n"}),
    ("snapshot", "sha256:aaab"),  # one file of the project changed
    ("base_id", "sha256:bbbc"),  # the base image moved under its tag
    ("args", {"MATRIX_DEPS": "latest"}),
    ("labels", {"org.tagmatrix.build-key": "l"}),
])
def test_any_changed_input_gives_another_digest(key: str, value: object) -> None:
    assert inputs_digest(**{**INPUTS, key: value}) != inputs_digest(**INPUTS)


def test_labels_are_one_instruction_at_the_end() -> None:
    from orchestrator.engine.reuse import with_labels

    text = with_labels("FROM python\nCOPY . .\n", {"b.x": "2", "a.x": 'say "hi"'})
    assert text == 'FROM python\nCOPY . .\nLABEL "a.x"="say \\"hi\\"" "b.x"="2"\n'
    assert with_labels("FROM python\n", {}) == "FROM python\n"
