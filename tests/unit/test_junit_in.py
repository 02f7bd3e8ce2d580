"""The inner JUnit from containers is untrusted: hostile input is refused, not obeyed."""

from __future__ import annotations

import io

import pytest

from orchestrator.junit_in import InvalidResults, clip, parse_junit
from orchestrator.results import TestOutcome

PYTEST_9 = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="1"
 tests="3" time="0.1"><testcase classname="tests.test_a" name="test_ok" time="0.001" />
<testcase classname="tests.test_a" name="test_bad" time="0.002"><failure
 message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="why" />
</testcase></testsuite></testsuites>"""


def test_pytest_9_layout() -> None:
    cases = parse_junit(PYTEST_9)
    assert [(c.name, c.outcome) for c in cases] == [("test_ok", "passed"),
                                                     ("test_bad", "failed"),
                                                     ("test_skip", "skipped")]
    assert cases[1].message == "assert 1 == 2"
    assert cases[1].text == "trace"


def test_bare_testsuite_root() -> None:
    xml = b'<testsuite name="x" tests="1"><testcase classname="c" name="t"/></testsuite>'
    assert [c.name for c in parse_junit(xml)] == ["t"]


def test_duplicate_names_are_kept_apart() -> None:
    # pytest reports a teardown error after a failure as a second testcase, same name
    xml = b"""<testsuite name="x"><testcase classname="c" name="t"><failure message="f"/>
    </testcase><testcase classname="c" name="t"><error message="teardown"/></testcase>
    </testsuite>"""
    cases = parse_junit(xml)
    assert [(c.name, c.outcome) for c in cases] == [("t", "failed"), ("t [2]", "error")]


def test_billion_laughs_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuite name="x"><testcase classname="c" name="&lol3;"/></testsuite>"""
    with pytest.raises(InvalidResults, match="unsafe"):
        parse_junit(bomb)


def test_external_entity_is_refused() -> None:
    xxe = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase classname="c" name="&e;"/></testsuite>"""
    with pytest.raises(InvalidResults, match="unsafe"):
        parse_junit(xxe)


def test_size_cap() -> None:
    with pytest.raises(InvalidResults, match="cap"):
        parse_junit(b"<testsuite>" + b" " * 2000 + b"</testsuite>", max_bytes=1000)


def test_invalid_utf8_is_repaired_visibly() -> None:
    xml = b'<testsuite name="x"><testcase classname="c" name="t\xff\xfe"/></testsuite>'
    assert parse_junit(xml)[0].name == "t\ufffd\ufffd"


@pytest.mark.parametrize("data", [b"", b"   ", b"not xml", b"<html><body/></html>",
                                  b"<testsuite><testcase"])
def test_garbage_is_an_explained_refusal(data: bytes) -> None:
    with pytest.raises(InvalidResults):
        parse_junit(data)


def test_nonsense_times_become_zero() -> None:
    xml = b"""<testsuite><testcase classname="c" name="a" time="-1"/>
    <testcase classname="c" name="b" time="nan"/><testcase classname="c" name="c" time="x"/>
    </testsuite>"""
    assert [c.time for c in parse_junit(xml)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("size", [10, 99, 100, 101, 1000, 123_457])
def test_clip_is_bounded_and_idempotent(size: int) -> None:
    text = "".join(chr(97 + i % 26) for i in range(size))
    once = clip(text, 100)
    assert len(once) <= 100
    assert clip(once, 100) == once
    if size > 100:
        assert once.startswith(text[:10])
        assert once.endswith(text[-10:])
        assert "[truncated" in once


def test_one_huge_token_is_handed_to_the_parser_in_few_pieces(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """expat before 2.6 scans a token that spans many reads again at each read: in
    16 KiB reads one 60 MiB attribute took 103 s (quadratic). Few large reads."""
    from orchestrator import junit_in

    reads: list[int] = []
    original = junit_in._BigReads.read

    def counted(self: io.BytesIO, size: int | None = -1) -> bytes:
        piece = original(self, size)  # type: ignore[arg-type]
        reads.append(len(piece))
        return piece

    monkeypatch.setattr(junit_in._BigReads, "read", counted)
    message = b"x" * (20 * 1024 * 1024)
    data = (b'<testsuite><testcase classname="t" name="a"><failure message="' + message
            + b'"/></testcase></testsuite>')
    (case,) = parse_junit(data)
    assert case.outcome is TestOutcome.FAILED
    assert len([n for n in reads if n]) <= 4, reads[:10]
