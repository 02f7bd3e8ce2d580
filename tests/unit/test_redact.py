"""Secrets out of every log line and report field, whatever path brought them in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.envvar import EnvVar
from orchestrator.plan import make_plan
from orchestrator.redact import Redactor
from orchestrator.results import CellResult, Interpreter, Status, TestCase, TestOutcome
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]
SECRET = "s3cr3t-t0ken-value-42"  # noqa: S105 - 21 characters, as in the reproduction
PEM = ("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7\n"
       "-----END KEY-----")


def test_a_multi_line_secret_is_redacted_line_by_line_and_escaped() -> None:
    redact = Redactor([PEM])
    diff = "E   - MIIEvQIBADANBgkqhkiG9w0BAQEF\nE   + AASCBKcwggSjAgEAAoIBAQC7"
    assert "MIIE" not in redact.text(diff)
    assert "AASC" not in redact.text(diff)
    assert redact.text(repr(PEM)) == "'***'"  # the escaped form, as repr and JSON show it


def test_a_truncated_secret_is_redacted_at_the_cut() -> None:
    redact = Redactor([SECRET])
    # pytest shortens long values in assertion messages: the first 16 of 21 characters
    assert redact.text(f"assert '{SECRET[:16]}...' == 'x'") == "assert '***...' == 'x'"
    assert redact.text(f"'...{SECRET[-12:]}'") == "'...***'"
    assert redact.text("s3cr3t-t") == "s3cr3t-t"  # a prefix alone, without a cut, is text


def test_the_byte_stream_is_redacted_across_chunk_borders() -> None:
    redact = Redactor([SECRET])
    chunks = [b"token=", SECRET[:5].encode(), SECRET[5:].encode(), b" end\n"]
    out = b"".join(redact.feed(c) for c in chunks) + redact.flush()
    assert out == b"token=*** end\n"


def test_every_text_field_of_a_result_is_redacted_and_enums_stay() -> None:
    cell = CellResult(
        id="3.12", python="3.12", variant="", status=Status.FAILED, reason=f"x {SECRET}",
        cases=(TestCase(classname=f"tests.{SECRET}", name="t", outcome=TestOutcome.FAILED,
                        message=SECRET, system_out=SECRET),),
        interpreter=Interpreter(version="3.12.1", executable=f"/opt/{SECRET}/python"),
        packages={SECRET: "1.0"}, failing_tests=(f"tests.{SECRET}::t",))
    clean = Redactor([SECRET]).value(cell)
    assert SECRET not in repr(clean)
    assert clean.status is Status.FAILED
    assert clean.cases[0].outcome is TestOutcome.FAILED
    assert clean.cases[0].classname == "tests.***"
    assert clean.interpreter.executable == "/opt/***/python"


def test_a_secret_set_in_an_include_entry_stays_secret(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          mode: [a, b]
          include:
            - {mode: b, env: {TOKEN: {secret: "inc1ude-s3cret-value"}}}
    """))
    job = make_plan(config, Catalogue.builtin()).jobs[1]
    (token,) = [e for e in job.env if e.name == "TOKEN"]
    assert token.secret
    assert "inc1ude" not in repr(token)
    assert repr(EnvVar(name="A", value="visible")) == \
        "EnvVar(name='A', value='visible', secret=False)"
