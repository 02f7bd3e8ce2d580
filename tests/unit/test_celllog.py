"""The cell log: streamed to disk, capped with a note, secrets redacted across chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.celllog import CellLog
from orchestrator.errors import CellError, Stage
from orchestrator.redact import Redactor


def test_sections_are_timestamped_and_output_is_written_as_it_comes(tmp_path: Path) -> None:
    log = CellLog(tmp_path / "c.log", flush_interval=0.0)
    log.section("run: pytest")
    log.output(b"line 1\n")
    assert (tmp_path / "c.log").read_bytes().endswith(b"line 1\n")  # on disk before close
    log.close()
    text = (tmp_path / "c.log").read_text()
    assert "==> 20" in text
    assert "Z run: pytest" in text
    assert text.endswith("line 1\n")


def test_cap_says_so_in_the_file(tmp_path: Path) -> None:
    log = CellLog(tmp_path / "c.log", max_bytes=100)
    for _ in range(50):
        log.output(b"0123456789")
    log.close()
    text = (tmp_path / "c.log").read_text()
    assert "log capped at 100 bytes" in text
    assert "400 bytes of output were not written" in text
    assert text.count("0123456789") == 10


def test_excerpt_keeps_head_and_tail(tmp_path: Path) -> None:
    log = CellLog(tmp_path / "c.log", keep=10)
    log.output(b"HEAD-")
    for _ in range(100):
        log.output(b"middle")
    log.output(b"-TAIL")
    log.close()
    excerpt = log.output_excerpt()
    assert excerpt.startswith("HEAD-midd")
    assert excerpt.endswith("ddle-TAIL")
    assert "[truncated 590 bytes]" in excerpt


def test_short_output_excerpt_is_whole(tmp_path: Path) -> None:
    log = CellLog(tmp_path / "c.log", keep=10)
    log.output(b"0123456789abcde")  # one chunk longer than keep, shorter than 2 * keep
    assert log.output_excerpt() == "0123456789abcde"
    log.close()


def test_redaction_across_chunk_borders(tmp_path: Path) -> None:
    redactor = Redactor(["s3cr3t-value"])
    stream = [b"token=s3c", b"r3t-va", b"lue; again s3cr3t-value", b" end"]
    out = b"".join(redactor.feed(c) for c in stream) + redactor.flush()
    assert out == b"token=***; again *** end"
    log = CellLog(tmp_path / "c.log", secrets=["hunter2"])
    log.note("password is hunter2")
    log.output(b"hunt")
    log.output(b"er2!")
    log.end_output()
    log.close()
    text = (tmp_path / "c.log").read_text()
    assert "hunter2" not in text
    assert text.count("***") == 2


def test_a_planted_link_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("host file")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "3.12-slim.log").symlink_to(victim)
    with pytest.raises(CellError, match="is a symbolic link") as raised:
        CellLog(tmp_path / "logs" / "3.12-slim.log", label="logs/3.12-slim.log")
    assert raised.value.stage is Stage.RESULTS
    assert victim.read_text() == "host file"
