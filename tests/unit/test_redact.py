"""Secrets out of every log line and report field, whatever path brought them in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.containerrecords import Interpreter
from orchestrator.envvar import EnvVar
from orchestrator.plan import make_plan
from orchestrator.redact import Redactor
from orchestrator.results import CellResult, Status, TestCase, TestOutcome
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
    # a short part amid other text, with no cut, is text
    assert redact.text("x s3cr3t-t y") == "x s3cr3t-t y"
    assert redact.text("x t0ken-value y") == "x t0ken-value y"


def test_the_parts_of_a_secret_that_pytest_diffs_and_clips_show_are_redacted() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhdHRrIn0.Zm9vYmFyYmF6cXV1eHNlY3JldHNpZ25hdHVyZQ"  # noqa: S105 - a made-up JWT
    redact = Redactor([token])
    # "Skipping 40 identical leading characters in diff": the tail on a diff line
    diff = ("E         Skipping 40 identical leading characters in diff, use -v to show\n"
            f"E         - {token[40:]}\nE         + {'Q' * 41}\n")
    assert token[40:] not in redact.text(diff)
    assert "E         - ***\n" in redact.text(diff)
    # ... and trailing characters: the head, ending its line
    assert redact.text(f"E         + {token[:30]}\n") == "E         + ***\n"
    # a head and a tail around junit_in.clip's marker line
    clipped = f"AAAA{token[:30]}\n[truncated 13457 characters]\n{token[-25:]}BBBB"
    assert redact.text(clipped) == "AAAA***\n[truncated 13457 characters]\n***BBBB"
    # a head or tail of at least half of the value, wherever it is
    assert redact.text(f"x{token[:41]}y z{token[-41:]}") == "x***y z***"


def test_a_secret_escaped_as_pytest_ids_and_ascii_show_it_is_redacted() -> None:
    secret = "p\u00e4ssw\u00f6rd-\u00dcn\u00efcode-Secret-42\u0101"  # noqa: S105
    redact = Redactor([secret])
    for shown in (ascii(secret), secret.encode("unicode_escape").decode(),
                  repr(secret.encode())):
        assert redact.text(f"test_param_id[{shown}]").count("***") == 1, shown
        assert "Secret-42" not in redact.text(f"test_param_id[{shown}]"), shown


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


def test_a_secret_as_pytest_shows_it_through_repr_is_redacted() -> None:
    """pytest's assertion messages show values by repr(): backslashes doubled, quotes
    and control characters escaped; JSON escapes them its own way."""
    for secret in ("pw\\Atk13\\Zq9", "pw'atk13\"Zq9", "pw\tatk13Zq9x", "pw\x07atk13Zq9x",
                   "C:\\Users\\atk13\\key"):
        redact = Redactor([secret])
        shown = f"E       AssertionError: assert {secret!r} == 'nope'"
        assert redact.text(shown) == "E       AssertionError: assert '***' == 'nope'", secret
        assert redact.text(json.dumps({"v": secret})) == '{"v": "***"}', secret
        cut = f"assert {repr(secret)[:11]}...' == 'nope'"  # pytest's cut of the repr
        assert repr(secret)[1:11] not in redact.text(cut), secret


def test_a_long_secret_needs_no_pattern_of_its_prefixes() -> None:
    """A 4 KiB private key: a pattern of every prefix and suffix (8,000 alternatives)
    took 33-42 s to compile and 31 s more for 256 KiB of pytest's dots. The pattern
    holds the value and its escaped forms only; cuts are found by scanning."""
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn" for _ in
        range(58)) + "\n-----END OPENSSH PRIVATE KEY-----"
    assert len(key) > 4000
    redact = Redactor([key])
    assert redact._text is not None
    assert len(redact._text.pattern) < 12 * len(key)  # the value, its forms, its lines
    dots = b"." * 256 * 1024 + key[:200].encode() + b"...\n"
    out = b"".join(redact.feed(dots[i:i + 65536]) for i in range(0, len(dots), 65536))
    out += redact.flush()
    assert key[:200].encode() not in out
    assert out.endswith(b"***...\n")
