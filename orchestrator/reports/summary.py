"""The human summary: a python x variant grid, the cells, then failing tests by test.

One model (:func:`grid`, :func:`failing_tests`) and two renderings: rich for
the terminal (plain text without a terminal) and Markdown for summary.md /
``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..changes import Change
from ..compare import unexpected_passes
from ..results import CellResult, Gate, RunResult, Status
from .junit import escape_visible

STYLE = {Status.PASSED: "green", Status.FAILED: "red", Status.ERROR: "magenta",
         Status.TIMEOUT: "yellow", Status.SKIPPED: "dim", Status.CANCELLED: "yellow"}
ICON = {Status.PASSED: "✅", Status.FAILED: "❌", Status.ERROR: "💥",
        Status.TIMEOUT: "⏱️", Status.SKIPPED: "⏭️", Status.CANCELLED: "🚫"}


@dataclass(frozen=True)
class GridEntry:
    cell: CellResult
    label: str  # the cell's other axis values, "" when python x variant is the whole id


def grid(cells: Sequence[CellResult]) -> tuple[list[str], list[str], dict[tuple[str, str],
                                                                         list[GridEntry]]]:
    """Rows (python), columns (variant) and the cells at each crossing, in matrix order."""
    rows: list[str] = []
    cols: list[str] = []
    at: dict[tuple[str, str], list[GridEntry]] = {}
    for cell in cells:
        if cell.python not in rows:
            rows.append(cell.python)
        if cell.variant not in cols:
            cols.append(cell.variant)
        label = ",".join(cell.axes.values())
        at.setdefault((cell.python, cell.variant), []).append(GridEntry(cell, label))
    return rows, cols, at


def failing_tests(cells: Sequence[CellResult]) -> list[tuple[str, str, list[str]]]:
    """(test, first message, cells it fails in), most widespread first."""
    found: dict[str, tuple[str, list[str]]] = {}
    for cell in cells:
        for case in cell.cases:
            if case.outcome.bad:
                key = one_line(case.key)
                # split on "\n" only: splitlines() also breaks at U+0085 and friends,
                # which tests print; escape control characters for every renderer
                first = escape_visible(case.message.split("\n", 1)[0])[:160]
                found.setdefault(key, (first, []))[1].append(cell.id)
    return sorted(((k, m, w) for k, (m, w) in found.items()), key=lambda t: (-len(t[2]), t[0]))


def not_gating(run: RunResult, test: str, where: Sequence[str]) -> str:
    """`` (not gating in 3.12-slim: flaky in 2 of the last 3 runs)`` for a failing test
    listed with its cells, when some of them do not gate it; "" otherwise."""
    why = run.insights.why_exempt() if run.insights is not None else {}
    by_reason: dict[str, list[str]] = {}
    for cell in where:
        if (test, cell) in why:
            by_reason.setdefault(why[(test, cell)], []).append(cell)
    return "".join(f" (not gating in {', '.join(cells)}: {reason})"
                   for reason, cells in by_reason.items())


def one_line(text: str) -> str:
    """Untrusted text (a test id, a reason quoting a build's output) as one visible line:
    control characters shown (``#x1B``), line breaks as ``⏎``, so that nothing a test
    chose starts a line of its own in a CI log (where ``::error::`` would be a command)."""
    return escape_visible(text).replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎")


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def reason(cell: CellResult) -> str:
    """The reason, with the number of attempts when there was more than one."""
    tries = len(cell.attempts)
    text = cell.reason + (f" (after {tries} attempts)" if tries > 1 else "")
    if cell.carried_from:  # --rerun-failed did not run it again: say whose result it is
        text = f"{text}; " if text else ""
        text += f"carried over from run {cell.carried_from} (not rerun)"
    return text


def _tests(cell: CellResult) -> str:
    t = cell.tests
    if not t.total:
        return "-"
    parts = [f"{t.passed} passed"]
    if t.failed:
        parts.append(f"{t.failed} failed")
    if t.errors:
        parts.append(f"{t.errors} errors")
    if t.skipped:
        parts.append(f"{t.skipped} skipped")
    return ", ".join(parts)


def spread(cells: Sequence[CellResult]) -> bool:
    """Whether the cells ran on more than one node (a Swarm, several engines): then the
    cell tables say which node ran each."""
    return len({c.node for c in cells if c.node}) > 1


def verdict_line(run: RunResult) -> str:
    """The one line that says what decided the exit code."""
    s = run.summary()
    counts = ", ".join(f"{s[st.value]} {st.value}" for st in Status if s[st.value])
    allowed = f"; allowed to fail: {', '.join(s['allowed_failures'])}" \
        if s["allowed_failures"] else ""
    noun = "cell" if s["cells"] == 1 else "cells"
    cells = f"{s['cells']} {noun} ({counts}) in {_duration(run.duration_s)}{allowed}"
    if run.cancelled:
        return f"cancelled: {cells}"
    checks = run.insights.failed_checks(run) if run.insights is not None else []
    if checks:  # --fail-on slowdowns, new-warnings (insights.py)
        names = ", ".join(dict.fromkeys(c.value for c, _ in checks))
        return f"FAILED: {len(checks)} finding(s) of --fail-on {names}; {cells}"
    match run.gate:
        case Gate.FAILURES:
            released = sum(1 for c in run.cells if c.gating and c.released)
            note = f"; not gating: {released} cell(s) failing only through quarantined " \
                   "tests" if released and run.ok else ""
            return f"{'OK' if run.ok else 'FAILED'}: {cells}{note}"
        case Gate.REGRESSIONS:
            new = len(run.regressed())  # but for tests that do not gate (flaky, quarantined)
            failing = sum(1 for c in run.cells if not c.ok)
            if new:
                return f"FAILED: {new} cell(s) with new failures (gate: regressions); {cells}"
            still = f"{failing} still failing, " if failing else ""
            held = _held_new_failures(run)
            if held:  # listed above as new failures: say why they did not fail the run
                return f"OK: no new failures that gate ({held} new failure(s) not gating: " \
                       f"known flaky or quarantined; {still}gate passed: regressions); {cells}"
            return f"OK: no new failures ({still}gate passed: regressions); {cells}"
        case _:
            assert_never(run.gate)


def _held_new_failures(run: RunResult) -> int:
    """New failures of gating cells that do not gate (known flaky, quarantined)."""
    held = run.insights.exempt() if run.insights is not None else set()
    return sum(1 for c in run.cells if c.gating and c.comparison is not None
               for t in c.comparison.tests_of(Change.NEW_FAILURE) if (t, c.id) in held)


NOT_GATING = "not gating"  # the kind of a comparison line about a test that does not gate
CHANGE_STYLE = {"new failure": "bold red", "fixed": "green", "still failing": "red",
                "flaky": "yellow", "unexpected pass": "cyan", "unchanged": "dim",
                NOT_GATING: "yellow"}


def print_terminal(run: RunResult, console: Console, *, reports: str = "") -> None:
    """Changes against the baseline first, then the grid, the cells, the failing tests."""
    changes = comparison_lines(run)
    if changes:
        title = f"Compared with baseline {run.baseline}" if run.baseline else "Notes"
        console.print(Text(title, style="bold"))
        for kind, change in changes:
            console.print(Text.assemble("  ", (f"{kind}: ", CHANGE_STYLE.get(kind, "")), change))
        console.print()
    rows, cols, at = grid(run.cells)
    table = Table(title="tagmatrix", title_justify="left")
    table.add_column("python")
    for col in cols:
        table.add_column(Text(col or "(default)"))
    for row in rows:
        line: list[Text | str] = [Text(row)]
        for col in cols:
            text = Text()
            for i, entry in enumerate(at.get((row, col), [])):
                if i:
                    text.append("\n")
                if entry.label:
                    text.append(f"{one_line(entry.label)}: ")
                text.append(str(entry.cell.status), style=STYLE[entry.cell.status])
                if entry.cell.status not in (Status.SKIPPED,):
                    text.append(f" {_duration(entry.cell.duration_s)}")
                if not entry.cell.gating:
                    text.append(" (allowed)", style="dim")
            line.append(text)
        table.add_row(*line)
    console.print(table)

    cells = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    nodes = spread(run.cells)
    for name in ("cell", "status", "tests", "interpreter", *(["node"] if nodes else []),
                 "time", "reason"):
        cells.add_column(name, overflow="fold")
    for cell in run.cells:
        # Text, not str: rich would read "[link=...]" in a string as its markup
        cells.add_row(Text(cell.id), Text(str(cell.status), style=STYLE[cell.status]),
                      _tests(cell), Text(cell.interpreter.version or "-"),
                      *([Text(one_line(cell.node) or "-")] if nodes else []),
                      _duration(cell.duration_s), Text(one_line(reason(cell))))
    console.print(cells)

    failing = failing_tests(run.cells)
    if failing:
        console.print(Text("\nFailing tests", style="bold"))
        for test, message, where in failing[:50]:
            console.print(Text.assemble("  ", (test, "red"), f"  in {', '.join(where)}",
                                        (one_line(not_gating(run, test, where)), "yellow")))
            if message:
                console.print(Text(f"      {message}", style="dim"))
        if len(failing) > 50:
            console.print(f"  ... and {len(failing) - 50} more (see junit.xml)")
    if run.insights is not None:  # what the run history says (reports/nightly.py)
        from . import nightly

        nightly.print_terminal(run, console)
    style = "green" if run.gate_passed else "red"
    console.print(Text(verdict_line(run), style=f"bold {style}"))
    if reports:
        console.print(f"reports: {reports}")


# Markdown punctuation a test's message could use to make links, images (a tracking
# pixel in a CI summary), emphasis or code: backslash-escaped, so it shows as text.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]~]|!(?=\[))")
# GitHub turns bare URLs into links: an escaped slash or dot keeps them text.
_AUTOLINK = re.compile(r"(?i)(?<=:)//|(?<=\bwww)\.")


def _md(text: str) -> str:
    """Text for a Markdown table cell: no raw HTML (GitHub renders <tags>), no links,
    images or emphasis, one line."""
    safe = escape_visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    safe = _MD_PUNCTUATION.sub(r"\\\1", safe)
    safe = _AUTOLINK.sub(lambda m: "\\/\\/" if m.group() == "//" else "\\.", safe)
    return safe.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """Text as a code span in a table cell (rendered literally: nothing to escape but the
    span's own delimiter and the table's)."""
    safe = escape_visible(text).replace("\n", " ").replace("`", "\u02cb").replace("|", "\\|")
    return f"`{safe}`"


def markdown(run: RunResult) -> str:
    """summary.md: the same content, ready for a GitHub step summary."""
    rows, cols, at = grid(run.cells)
    out = ["## tagmatrix", "", f"**{_md(verdict_line(run))}**", ""]
    changes = comparison_lines(run)
    if changes:
        out.append(f"### Compared with baseline {run.baseline}" if run.baseline else "### Notes")
        out += ["", *(f"- **{kind}**: {_md(text)}" for kind, text in changes), ""]
    out.append("| python | " + " | ".join(c or "(default)" for c in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for row in rows:
        line = [f"**{row}**"]
        for col in cols:
            bits = []
            for entry in at.get((row, col), []):
                cell = entry.cell
                bit = f"{ICON[cell.status]} {cell.status}"
                if entry.label:
                    bit = f"{_md(entry.label)}: {bit}"
                if cell.status is not Status.SKIPPED:
                    bit += f" {_duration(cell.duration_s)}"
                if not cell.gating:
                    bit += " (allowed to fail)"
                bits.append(bit)
            line.append("<br>".join(bits) or " ")
        out.append("| " + " | ".join(line) + " |")
    nodes = spread(run.cells)
    out += ["", "| cell | status | tests | interpreter | " + ("node | " if nodes else "")
            + "time | reason |", "|---|---|---|---|" + ("---|" if nodes else "") + "---|---|"]
    for cell in run.cells:
        out.append(f"| `{cell.id}` | {ICON[cell.status]} {cell.status} | {_tests(cell)} | "
                   f"{_md(cell.interpreter.version) or '-'} | "
                   + (f"{_md(one_line(cell.node)) or '-'} | " if nodes else "")
                   + f"{_duration(cell.duration_s)} | {_md(one_line(reason(cell)))} |")
    failing = failing_tests(run.cells)
    if failing:
        out += ["", "### Failing tests", "", "| test | cells | message |", "|---|---|---|"]
        for test, message, where in failing[:200]:
            held = not_gating(run, test, where)
            out.append(f"| {_code(test)}{_md(held)} | {', '.join(_code(w) for w in where)} | "
                       f"{_md(message)} |")
        if len(failing) > 200:
            out.append(f"\n... and {len(failing) - 200} more failing tests "
                       "(index.html, junit.xml)")
    if run.insights is not None:  # what the run history says (reports/nightly.py)
        from . import nightly

        out += nightly.markdown(run)
    return "\n".join(out) + "\n"


def comparison_lines(run: RunResult) -> list[tuple[str, str]]:
    """(kind, text) lines about the baseline and allowed-to-fail cells, most urgent first;
    shared by the terminal, summary.md and index.html."""
    lines: list[tuple[str, str]] = []
    # what does not gate says so where it is listed (the verdict line leaves it out)
    why = run.insights.why_exempt() if run.insights is not None else {}
    held = set(why)
    if run.baseline:
        for change in (Change.NEW_FAILURE, Change.FIXED, Change.STILL_FAILING, Change.FLAKY):
            for cell in run.cells:
                comparison = cell.comparison
                if comparison is None:
                    continue
                failing = change in (Change.NEW_FAILURE, Change.STILL_FAILING)
                if comparison.cell is change:
                    text = f"{cell.id}: {change}" + (f" ({cell.reason})" if cell.reason
                                                     and change is not Change.FIXED else "")
                    kind = change.value
                    if failing and not cell.gating:
                        text, kind = f"{text} (not gating: allowed to fail)", NOT_GATING
                    elif change is Change.NEW_FAILURE and cell.excused(held):
                        text += " (not gating: its failing tests are known flaky or quarantined)"
                        kind = NOT_GATING
                    if comparison.attribution:
                        text += f"; {comparison.attribution}"
                    lines.append((kind, one_line(text)))
                for test in comparison.tests_of(change):
                    text, kind = f"{cell.id}: {test}: {change}", change.value
                    reason = "allowed to fail" if not cell.gating else why.get((test, cell.id))
                    if failing and reason:
                        text += f" (not gating: {reason})"
                        kind = NOT_GATING if change is Change.NEW_FAILURE else kind
                    if change is Change.NEW_FAILURE and comparison.attribution \
                            and comparison.cell is not Change.NEW_FAILURE:
                        text += f"; {comparison.attribution}"
                    lines.append((kind, one_line(text)))
        if not lines:
            lines.append((Change.UNCHANGED.value,
                          f"nothing changed against baseline {run.baseline}"))
    for cell in unexpected_passes(run):
        lines.append(("unexpected pass", f"{cell.id} now passes although it is allowed to "
                                         "fail: consider making it required"))
    return lines
