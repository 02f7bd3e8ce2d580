"""Reports from real containers: hostile results, control bytes, log caps, re-rendering."""

from __future__ import annotations

import filecmp
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import junitparser
import pytest

from tests.conftest import validate_against_xsd
from tests.integration.conftest import (
    REGISTRY,
    Outcome,
    lab_matrix,
    make_project,
    tagmatrix,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

WRITER = r'''
import os
import sys

kind = os.environ["MATRIX_KIND"]
out = "/tmp/out.xml"
ANSI = "\x1b[31mred\x1b[0m bell\x07 nul\x00 c1\x85 done"
case = '<testcase classname="w" name="{}" time="0.1">{}</testcase>'
suite = '<testsuites><testsuite name="w">{}</testsuite></testsuites>'
if kind == "bomb":
    body = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">'
                      for p, n in zip("abcdefgh", "bcdefghi"))
            + ']><testsuite name="w"><testcase classname="w" name="&i;"/></testsuite>')
    open(out, "w").write(body)
elif kind == "huge":
    with open(out, "w") as f:  # 200 MB of well-formed XML
        f.write('<testsuite name="w">')
        for _ in range(200):
            f.write("<!--" + "x" * (1024 * 1024 - 7) + "-->")
        f.write("</testsuite>")
elif kind == "badutf8":
    open(out, "wb").write(suite.format(case.format("caf\xff\xfe", "")).encode("latin-1"))
elif kind == "bare":
    open(out, "w").write('<testsuite name="w">' + case.format("a", "") + case.format("b", "")
                         + "</testsuite>")
elif kind == "dupes":
    open(out, "w").write(suite.format(case.format("t", '<failure message="first"/>')
                                      + case.format("t", '<error message="teardown"/>')))
    sys.exit(1)
elif kind == "ansi":
    # real pytest, whose tests print and fail with ANSI colours and control bytes
    import subprocess
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-o", "junit_logging=all",
                              f"--junitxml={out}", "ansi_tests.py"]))
elif kind == "flood":
    chunk = "0123456789abcdef" * 64 + "\n"
    for _ in range(2048):  # 2 MiB of output
        sys.stdout.write(chunk)
    open(out, "w").write(suite.format(case.format("flood", "")))
'''


ANSI_TESTS = r'''
ANSI = "\x1b[31mred\x1b[0m bell\x07 nul\x00 c1\x85 done"


def test_prints_colours():
    print(ANSI)


def test_fails_in_colour():
    assert ANSI == "plain", ANSI
'''


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
            lab_minors: list[str]) -> Iterator[Outcome]:
    with Workspace(tmp_path_factory.mktemp("hostile"), docker_client, REGISTRY) as workspace:
        yield _hostile_run(workspace.folder(), docker_client, lab_minors)


def _hostile_run(root: Path, client: docker.DockerClient, lab_minors: list[str]) -> Outcome:
    kinds = "[bomb, huge, badutf8, bare, dupes, ansi, flood]"
    matrix = lab_matrix([lab_minors[-1]], extra="logs:\n  max_bytes: 100000\n")
    matrix = matrix.replace("python -m pytest -q tests", "python writer.py")
    matrix = matrix.replace("variant: [slim]", f"variant: [slim]\n  kind: {kinds}")
    matrix = matrix.replace("timeout: 120", "timeout: 120\n  junit: /tmp/out.xml")
    path = make_project(root, matrix, {})
    (root / "writer.py").write_text(WRITER)
    (root / "ansi_tests.py").write_text(ANSI_TESTS)
    return tagmatrix("run", "-f", str(path), "--reports", str(root / "reports"), client=client)


def _cell(outcome: Outcome, kind: str) -> dict[str, Any]:
    return next(c for c in outcome.cells().values() if c["axes"].get("kind") == kind)


def test_hostile_results_become_results_errors_not_crashes(hostile: Outcome) -> None:
    assert hostile.code == 1, hostile.err
    assert "Traceback" not in hostile.err
    bomb, huge = _cell(hostile, "bomb"), _cell(hostile, "huge")
    assert bomb["status"] == "error"
    assert bomb["stage"] == "results"
    assert "unsafe" in str(bomb["reason"])
    assert huge["status"] == "error"
    assert huge["stage"] == "results"
    assert "cap" in str(huge["reason"])
    assert hostile.leftovers == set()


def test_odd_but_honest_results_are_read(hostile: Outcome) -> None:
    assert _cell(hostile, "badutf8")["status"] == "passed"
    bare = _cell(hostile, "bare")
    assert bare["status"] == "passed"
    assert bare["tests"] == {"total": 2, "passed": 2, "failed": 0, "errors": 0, "skipped": 0}
    dupes = _cell(hostile, "dupes")
    assert dupes["status"] == "failed"
    root = ET.fromstring((hostile.reports / "junit.xml").read_bytes())  # noqa: S314 - ours
    names = [tc.get("name") for tc in root.iter("testcase")
             if (tc.get("classname") or "").endswith("-dupes.w")]
    assert names == ["t", "t [2]"]  # both kept, GitLab will show both
    bad = [tc.get("name") for tc in root.iter("testcase")
           if (tc.get("classname") or "").endswith("-badutf8.w")]
    assert bad == ["caf\ufffd\ufffd"]


def test_control_bytes_and_ansi_stay_visible_and_valid(hostile: Outcome) -> None:
    ansi = _cell(hostile, "ansi")
    assert ansi["status"] == "failed", ansi["reason"]
    assert ansi["tests"]["total"] == 2
    assert ansi["tests"]["failed"] == 1
    text = (hostile.reports / "junit.xml").read_text(encoding="utf-8")
    assert "#x1B[31mred#x1B[0m" in text
    root = ET.fromstring(text.encode())  # noqa: S314 - ours
    failure = root.find(".//testcase[@name='test_fails_in_colour']/failure")
    assert failure is not None
    assert "#x1B[31mred" in (failure.get("message") or "")
    assert "\x1b" not in text
    suites = list(junitparser.JUnitXml.fromfile(str(hostile.reports / "junit.xml")))
    assert len(suites) == 7


def test_real_junit_validates_against_the_xsd(hostile: Outcome) -> None:
    validate_against_xsd((hostile.reports / "junit.xml").read_bytes())


def test_log_cap_is_said_in_the_file(hostile: Outcome) -> None:
    flood = _cell(hostile, "flood")
    assert flood["status"] == "passed"
    log = hostile.reports / str(flood["log"])
    assert log.stat().st_size < 110_000
    text = log.read_text()
    assert "log capped at 100000 bytes" in text
    assert "bytes of output were not written (log cap)" in text


def test_report_command_reproduces_every_file(hostile: Outcome, tmp_path: Path) -> None:
    copy = tmp_path / "reports"
    shutil.copytree(hostile.reports, copy)
    again = tagmatrix("report", "--reports", str(copy), "--exit-code")
    assert again.code == 1, again.err  # the failing verdict, read back
    for name in ["junit.xml", "summary.md", "index.html", "results.json",
                 *(f"cells/{p.name}" for p in (hostile.reports / "cells").iterdir())]:
        assert filecmp.cmp(hostile.reports / name, copy / name, shallow=False), name
