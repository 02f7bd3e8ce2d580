"""summary.md and index.html from fixed results (snapshots), and the report files.

Snapshots live in tests/unit/snapshots/; after an intended change, rewrite them
with TAGMATRIX_UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.reportio import rerender, write_reports
from orchestrator.reports import html, summary
from tests.fixtures import sample_run

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("TAGMATRIX_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no snapshot {path}: run with TAGMATRIX_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its snapshot"


def test_summary_markdown_snapshot() -> None:
    check_snapshot("summary.md", summary.markdown(sample_run()))


def test_index_html_snapshot() -> None:
    check_snapshot("index.html", html.render(sample_run()))


def test_markdown_content() -> None:
    text = summary.markdown(sample_run())
    assert "| **3.13** | ❌ failed 1.2s | ⏱️ timeout 1.2s |" in text
    assert "allowed to fail: 3.15-rc-slim" in text
    assert "| `tests.test_a::test_two` | `3.13-slim`, `3.15-rc-slim` |" in text


def test_the_summary_names_the_nodes_when_cells_ran_on_several() -> None:
    run = sample_run()
    assert "| node |" not in summary.markdown(run)  # one node: no column
    spread = replace(run, cells=tuple(replace(c, engine="cluster", node=f"node-{i % 2}")
                                      for i, c in enumerate(run.cells)))
    text = summary.markdown(spread)
    assert "| cell | status | tests | interpreter | node | time | reason |" in text
    assert "| `3.13-slim` | ❌ failed | 1 passed, 1 failed | 3.13.1 | node-0 | 1.2s |" in text
    console = Console(width=200, record=True)
    summary.print_terminal(spread, console)
    assert re.search(r"3\.12-alpine +error +- +- +node-1 ", console.export_text())


def test_index_html_is_self_contained_and_escaped() -> None:
    page = html.render(sample_run())
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "url(" not in page
    assert "@import" not in page
    # the only absolute URLs are links to the image's source, not resources
    assert set(re.findall(r'(?:src|href)="(https?://[^"]+)"', page)) == {
        "https://github.com/docker-library/python"}
    assert "AssertionError: 1 != 2 &lt;&amp;&gt;" in page
    assert 'id="cell-3.13-slim" open' in page  # gating failures are expanded
    assert 'id="cell-3.15-rc-slim" open' not in page
    assert "base 273.7 MB, built 61.0 MB" in page  # the alpine trade-off
    assert "PSF-2.0" in page


def test_write_reports_and_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    write_reports(sample_run(), tmp_path / "r")
    names = sorted(str(p.relative_to(tmp_path / "r")) for p in (tmp_path / "r").rglob("*"))
    assert names == ["cells", "cells/3.12-alpine.xml", "cells/3.12-slim.xml",
                     "cells/3.13-alpine.xml", "cells/3.13-slim.xml", "cells/3.15-rc-alpine.xml",
                     "cells/3.15-rc-slim.xml", "index.html", "junit.xml", "results.json",
                     "summary.md"]
    assert step.read_text().startswith("earlier step\n## tagmatrix")


def test_report_rerenders_identical_files(tmp_path: Path) -> None:
    reports = tmp_path / "r"
    write_reports(sample_run(), reports, step_summary=False)
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    run = rerender(reports)
    assert [c.id for c in run.cells] == [c.id for c in sample_run().cells]
    assert [len(c.cases) for c in run.cells] == [len(c.cases) for c in sample_run().cells]
    after = {p: p.read_bytes() for p in reports.rglob("*")
             if p.is_file() and p.name != ".tagmatrix.lock"}  # the lock names its holder
    assert after == before
