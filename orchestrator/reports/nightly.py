"""What the history says, in the terminal and in summary.md: gates, tests that do not
gate, broken/fixed/flaky, slowdowns, the warnings ledger, quarantine, each cell's
recent outcomes.

One model (:func:`sections`, :func:`strips`) and the renderings; index.html has
its own (reports/nightly_html.py). Nothing here is printed for a run without
insights (a results.json of an older tagmatrix), so those reports stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from ..gates import evaluate
from ..history.flaky import FlakyTest, Verdict
from ..insights import ABSENT, Insights
from ..results import Gate, RunResult, Status
from .junit import escape_visible
from .summary import ICON, STYLE, _code, _md, one_line

MAX_LINES = 30  # per section in the terminal and summary.md (index.html and results.json
# have them all)
MAX_FINDINGS = 10  # per gate in the terminal, summary.md and annotations (index.html: all)
KIND_STYLE = {"gate failed": "bold red", "gate passed": "green", "not gating": "yellow",
              "broken": "bold red", "fixed": "green", "flaky": "yellow",
              "slowdown": "yellow", "new warning": "bold yellow", "warning": "",
              "new since baseline": "bold yellow", "expired": "red", "remove": "cyan",
              "incident": "magenta", "history": "dim", "not written": "bold yellow"}


# A strip without colour (a CI log): one letter per status, upper case for what ran to an
# outcome, lower case for what did not run its tests.
LETTER = {Status.PASSED.value: "P", Status.FAILED.value: "F", Status.ERROR.value: "E",
          Status.TIMEOUT.value: "T", Status.SKIPPED.value: "s", Status.CANCELLED.value: "c",
          ABSENT: "-"}
LEGEND = " ".join(f"{letter} {status}" for status, letter in LETTER.items())
SQUARE = "■"


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[tuple[str, str], ...]  # (kind, text)
    more: int = 0  # lines left out


def _flaky(test: FlakyTest) -> str:
    last = test.evidence[-1] if test.evidence else None
    where = f"in {', '.join(test.cells)}"
    flip = f"; last flip {last.was} → {last.now} in run {last.after}" if last else ""
    return f"{test.test}: {test.describe()} ({test.flips} flip(s) {where}, rate " \
           f"{test.rate:.0%}){flip}"


def _capped(title: str, lines: list[tuple[str, str]], cap: int | None) -> Section | None:
    if not lines:
        return None
    shown = lines if cap is None else lines[:cap]
    return Section(title, tuple((k, escape_visible(t)) for k, t in shown),
                   len(lines) - len(shown))


def sections(run: RunResult, *, cap: int | None = MAX_LINES) -> list[Section]:
    """The history's findings, most urgent first (``cap``: lines per section)."""
    insights = run.insights
    if insights is None:
        return []
    found: list[Section | None] = []
    if run.gate is not Gate.FAILURES or insights.checks:
        lines = []
        for result in evaluate(run):
            state = "failed" if result.failed else "passed"
            lines.append((f"gate {state}", f"--fail-on {result.name}: {state}"
                          + (f" ({len(result.findings)})" if result.findings else "")))
            shown = result.findings if cap is None else result.findings[:MAX_FINDINGS]
            lines += [(f"gate {state}", f"  {f}") for f in shown]
            if len(shown) < len(result.findings):
                lines.append((f"gate {state}", f"  ... and {len(result.findings) - len(shown)}"
                                               " more (index.html has them all)"))
        found.append(_capped("Gates", lines, None))
    found.append(_capped("Not gating", [
        ("not gating", f"{e.cell}: {e.test}: not gating: {e.why}") for e in insights.held], cap))
    why = insights.why_exempt()
    found.append(_capped("Since each cell's previous run", [
        (v.verdict.value, f"{v.cell}: {v.test}: {v.verdict}"
         + (f" ({'; '.join(v.changes)})" if v.changes else "")
         + (f" (not gating: {why[(v.test, v.cell)]})" if (v.test, v.cell) in why else ""))
        for v in insights.verdicts if v.verdict in (Verdict.BROKEN, Verdict.FIXED,
                                                     Verdict.FLAKY)], cap))
    found.append(_capped("Flaky tests", [("flaky", _flaky(f)) for f in insights.flaky], cap))
    found.append(_capped("Slowdowns", [("slowdown", s.describe())
                                       for s in insights.slowdowns], cap))
    found.append(_capped("Warnings ledger", _ledger(insights), cap))
    found.append(_capped("Quarantine", [("expired", e) for e in insights.expired]
                         + [("remove", r) for r in insights.removable], cap))
    found.append(_capped("Incidents", [
        ("incident", f"{c}: most tests failed or errored: not counted as evidence of "
                     "flakiness") for c in insights.incidents], cap))
    found.append(_capped("History", _history(insights), None))
    return [s for s in found if s is not None]


def _ledger(insights: Insights) -> list[tuple[str, str]]:
    new = set(insights.new_warnings or ())
    lines = [("new since baseline" if e.key in new else "new warning" if e.new else "warning",
              e.describe() + (f" [on {', '.join(e.pythons)}]" if len(e.pythons) > 1 else ""))
             for e in insights.ledger]
    return sorted(lines, key=lambda line: line[0] == "warning")  # stable: new ones first


def _history(insights: Insights) -> list[tuple[str, str]]:
    note = insights.history
    if note is None:
        return []
    if note.problem:
        return [("not written", f"history not written: {note.problem}")]
    kept = "run" if note.runs == 1 else "runs"
    text = f"recorded in {note.path} (run {note.seq}; {note.runs} {kept} kept"
    text += f", {note.pruned} pruned)" if note.pruned else ")"
    if note.baseline:
        text += f"; --baseline auto: run {note.baseline}"
    lines = [("history", text)]
    if note.scope:  # which runs the verdicts, flaky tests, slowdowns and strips compare with
        compared = f"compared with the {note.compared} earlier run(s) of {note.scope}" \
            f" (the latest: {note.previous})" if note.compared else \
            f"no earlier run of {note.scope} to compare with"
        if note.left_out:
            compared += (f"; {note.left_out} run(s) of another branch, matrix file or "
                         "profile left out")
        lines.append(("history", compared))
    return lines


def strips(run: RunResult) -> list[tuple[str, list[str]]]:
    """(cell, its statuses over the recent runs, oldest first, this run last): Status
    values, or ``absent`` for a run without the cell."""
    note = run.insights.history if run.insights else None
    if note is None:
        return []
    return [(cell, [p.status for p in points if p.status in LETTER])
            for cell, points in note.strips]


def strip_text(points: list[str], *, colour: bool) -> Text:
    """A cell's strip: coloured squares (absent: a dim dot), or without colour one letter
    per run (:data:`LETTER`), so that a CI log still tells them apart."""
    line = Text()
    for status in points:
        if not colour:
            line.append(LETTER[status])
        elif status == ABSENT:
            line.append("·", style="dim")
        else:
            line.append(SQUARE, style=STYLE[Status(status)])
    return line


def print_terminal(run: RunResult, console: Console) -> None:
    """The sections and the strips, before the verdict line."""
    for section in sections(run):
        console.print(Text(f"\n{section.title}", style="bold"))
        for kind, text in section.lines:
            console.print(Text.assemble("  ", (one_line(text), KIND_STYLE.get(kind, ""))))
        if section.more:
            console.print(f"  ... and {section.more} more (index.html, results.json)")
    found = strips(run)
    if any(len(points) > 1 for _, points in found):
        colour = console.color_system is not None
        legend = Text()
        if colour:
            for status in Status:
                legend.append(SQUARE, style=STYLE[status])
                legend.append(f" {status.value} ")
            legend.append("· absent", style="dim")
        else:
            legend.append(LEGEND)
        console.print(Text.assemble(("\nRecent runs, oldest first", "bold"), " (", legend, ")"))
        width = max(len(cell) for cell, _ in found)
        for cell, points in found:
            console.print(Text.assemble(f"  {cell:<{width}}  ", strip_text(points,
                                                                           colour=colour)))


def _icon(status: str) -> str:
    return ICON[Status(status)] if status != ABSENT else "⬜"


def markdown(run: RunResult) -> list[str]:
    """summary.md's lines for the history (none without insights)."""
    out: list[str] = []
    for section in sections(run):
        out += ["", f"### {section.title}", ""]
        out += [f"- **{kind}**: {_md(text)}" if not text.startswith("  ")
                else f"  - {_md(text.strip())}" for kind, text in section.lines]
        if section.more:
            out.append(f"- ... and {section.more} more (index.html, results.json)")
    found = strips(run)
    if any(len(points) > 1 for _, points in found):
        out += ["", "### Recent runs", "", "| cell | oldest → this run |", "|---|---|"]
        out += [f"| {_code(cell)} | {''.join(_icon(s) for s in points)} |"
                for cell, points in found]
        out += ["", " ".join(f"{_icon(s)} {s}" for s in LETTER)]
    return out


def github_annotations(run: RunResult) -> list[tuple[str, str, str]]:
    """(level, title, text) for GitHub: failed gates beyond ``failures`` as errors, tests
    that do not gate and expired quarantine entries as warnings."""
    insights = run.insights
    if insights is None:
        return []
    out = [("error", f"tagmatrix --fail-on {r.name}", "; ".join(r.findings[:MAX_FINDINGS])
            + (f"; and {len(r.findings) - MAX_FINDINGS} more (summary.md, index.html)"
               if len(r.findings) > MAX_FINDINGS else ""))
           for r in evaluate(run)[1:] if r.failed]  # the gate itself has its own errors
    out += [("warning", f"not gating in {e.cell}", f"{e.test}: {e.why}") for e in insights.held]
    out += [("warning", "tagmatrix quarantine", text) for text in insights.expired]
    return out
