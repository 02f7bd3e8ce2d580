"""index.html's sections for the history: recent runs per cell (a strip), gates and
tests that do not gate, flaky tests, slowdowns (a table sortable by ratio, seconds,
test or cell — without a script: radio buttons and CSS), the warnings ledger.

Still one self-contained page: inline CSS, no script, no network.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from ..history.slowdown import Slowdown
from ..insights import Insights
from ..results import RunResult
from .junit import escape_visible
from .nightly import sections, strips

CSS = """
.strip { display: inline-flex; gap: 2px; vertical-align: middle; }
.strip span { display: inline-block; width: 14px; height: 14px; border-radius: 2px;
              border: 1px solid rgba(0,0,0,.15); }
.strip span.now { outline: 2px solid #1f2328; outline-offset: 1px; }
.strip span.passed { background: #2da44e; } .strip span.failed { background: #cf222e; }
.strip span.error { background: #8250df; } .strip span.timeout { background: #bf8700; }
.strip span.cancelled { background: #bc4c00; } .strip span.skipped { background: #afb8c1; }
.strip span.absent { background: transparent; border-style: dashed; }
table.history td, table.slow td, table.ledger td, table.flaky td { font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.test { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px;
          max-width: 460px; overflow-wrap: anywhere; }
.sorter { margin: 4px 0 8px; color: var(--muted); }
.sorter label { cursor: pointer; padding: 2px 8px; border: 1px solid var(--line);
                border-radius: 10px; margin-left: 4px; }
input.sort { position: absolute; opacity: 0; pointer-events: none; }
table.slow tbody { display: none; }
#slow-ratio:checked ~ table.slow tbody.by-ratio,
#slow-seconds:checked ~ table.slow tbody.by-seconds,
#slow-test:checked ~ table.slow tbody.by-test,
#slow-cell:checked ~ table.slow tbody.by-cell { display: table-row-group; }
#slow-ratio:checked ~ .sorter label[for=slow-ratio],
#slow-seconds:checked ~ .sorter label[for=slow-seconds],
#slow-test:checked ~ .sorter label[for=slow-test],
#slow-cell:checked ~ .sorter label[for=slow-cell] { background: #1f2328; color: #fff; }
.bar { display: inline-block; height: 10px; background: #0969da; vertical-align: middle;
       margin-left: 6px; }
tr.new-warning td { background: #fff1c2; }
"""

_SORTS: tuple[tuple[str, str, Callable[[Slowdown], tuple[object, ...]]], ...] = (
    ("ratio", "ratio", lambda s: (-s.ratio, s.test, s.cell)),
    ("seconds", "seconds lost", lambda s: (-(s.after_s - s.before_s), s.test, s.cell)),
    ("test", "test", lambda s: (s.test, s.cell)),
    ("cell", "cell", lambda s: (s.cell, s.test)),
)
_KIND_CSS = {"gate failed": "failed", "gate passed": "passed", "not gating": "timeout",
             "broken": "failed", "fixed": "passed", "flaky": "timeout", "expired": "failed",
             "remove": "cancelled", "incident": "error", "not written": "timeout"}


def _text(value: str) -> str:
    return escape(escape_visible(value))


def _notes(run: RunResult) -> str:
    """Gates, not gating, verdicts, quarantine, incidents and the history's state."""
    wanted = ("Gates", "Not gating", "Since each cell's previous run", "Quarantine",
              "Incidents", "History")
    out = []
    for section in sections(run, cap=None):
        if section.title not in wanted:
            continue
        items = "".join(f'<li><span class="badge {_KIND_CSS.get(kind, "skipped")}">'
                        f"{escape(kind)}</span>{escape(text)}</li>"
                        for kind, text in section.lines)
        out.append(f'<h3>{escape(section.title)}</h3><ul class="changes">{items}</ul>')
    return "".join(out)


def _strips(run: RunResult) -> str:
    found = strips(run)
    if not any(len(points) > 1 for _, points in found):
        return ""
    rows = []
    for cell, points in found:
        marks = "".join(f'<span class="{s}{" now" if i == len(points) - 1 else ""}" '
                        f'title="{s}"></span>' for i, s in enumerate(points))
        rows.append(f'<tr><th>{_text(cell)}</th><td><span class="strip">{marks}</span></td>'
                    f'<td class="num">{len(points)}</td></tr>')
    return ('<h3>Recent runs</h3><table class="history"><thead><tr><th>cell</th>'
            "<th>oldest &rarr; this run</th><th>runs</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _flaky(insights: Insights) -> str:
    if not insights.flaky:
        return ""
    rows = []
    for test in insights.flaky:
        last = test.evidence[-1] if test.evidence else None
        flip = f"{last.was} &rarr; {last.now} ({_text(last.after)})" if last else "-"
        rows.append(f'<tr><td class="test">{_text(test.test)}</td>'
                    f"<td>{_text(', '.join(test.cells))}</td>"
                    f'<td class="num">{test.flipped_runs} of {test.runs}</td>'
                    f'<td class="num">{test.rate:.0%}</td><td>{flip}</td></tr>')
    return ('<h3>Flaky tests</h3><table class="flaky"><thead><tr><th>test</th><th>cells</th>'
            "<th>runs with a flip</th><th>rate</th><th>last flip</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _slow_rows(found: list[Slowdown], widest: float) -> str:
    rows = []
    for slow in found:
        ratio = f"{slow.ratio:.1f}&times;" if slow.before_s > 0 else "&infin;"
        width = 0 if widest <= 0 else round(120 * min(slow.ratio, widest) / widest)
        against = _text(slow.baseline_cell or f"its last {slow.runs} runs")
        rows.append(f'<tr><td class="test">{_text(slow.test)}</td><td>{_text(slow.cell)}</td>'
                    f"<td>{against}</td>"
                    f'<td class="num">{slow.before_s:.2f} s &rarr; {slow.after_s:.2f} s</td>'
                    f'<td class="num">{ratio}<span class="bar" style="width:{width}px">'
                    "</span></td></tr>")
    return "".join(rows)


def _slowdowns(insights: Insights) -> str:
    found = list(insights.slowdowns)
    if not found:
        return ""
    finite = [s.ratio for s in found if s.before_s > 0]
    widest = max(finite, default=1.0)
    radios = "".join(f'<input class="sort" type="radio" name="slow-sort" id="slow-{key}"'
                     + (" checked" if i == 0 else "") + ">"
                     for i, (key, _, _) in enumerate(_SORTS))
    labels = "".join(f'<label for="slow-{key}">{label}</label>' for key, label, _ in _SORTS)
    bodies = "".join(f'<tbody class="by-{key}">{_slow_rows(sorted(found, key=order), widest)}'
                     "</tbody>" for key, _, order in _SORTS)
    threshold = insights.threshold
    return (f"<h3>Slowdowns</h3><p>A test counts as slower at {threshold.ratio:g}&times; its "
            f"baseline and {threshold.min_seconds:g} s more (passing runs only).</p>"
            f'<div class="slowdowns">{radios}<p class="sorter">sort by {labels}</p>'
            '<table class="slow"><thead><tr><th>test</th><th>cell</th><th>against</th>'
            f"<th>time</th><th>ratio</th></tr></thead>{bodies}</table></div>")


def _ledger(insights: Insights) -> str:
    if not insights.ledger:
        return ""
    new = set(insights.new_warnings or ())
    rows = []
    for entry in insights.ledger:
        fresh = entry.new or entry.key in new
        flag = "new since the baseline" if entry.key in new else \
            "first seen on the newest interpreter" if entry.new else ""
        rows.append(f'<tr{" class=new-warning" if fresh else ""}>'
                    f"<td>{_text(entry.first_seen)}</td><td>{_text(', '.join(entry.pythons))}</td>"
                    f"<td><code>{_text(entry.category)}</code> {_text(entry.message)}"
                    + (f" <strong>({flag})</strong>" if flag else "") + "</td>"
                    f"<td><code>{_text(entry.location)}</code></td>"
                    f'<td class="num">{entry.test_count or len(entry.tests)}</td>'
                    f'<td class="num">{entry.count}</td></tr>')
    return ('<h3>Warnings ledger</h3><p>Each warning the tests raised, with the interpreters '
            "it appears on; the newest first: they become errors next.</p>"
            '<table class="ledger"><thead><tr><th>first seen</th><th>on</th><th>warning</th>'
            "<th>where</th><th>tests</th><th>times</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def render(run: RunResult) -> str:
    """The page's history part ("" for a run without insights)."""
    insights = run.insights
    if insights is None:
        return ""
    body = _notes(run) + _strips(run) + _flaky(insights) + _slowdowns(insights) + \
        _ledger(insights)
    return f'<h2 id="history">History, flakiness, slowdowns, warnings</h2>{body}' if body else ""
