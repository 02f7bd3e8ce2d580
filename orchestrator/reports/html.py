"""index.html: one self-contained page (inline CSS, no script, no network).

It answers at a glance what fails and where: the python x variant grid,
colour-coded; a "test x cell" table of the failing tests; and per cell the
image, digest, interpreter, timings, image sizes (the slim/alpine trade-off
made visible), the base image's OCI labels and a link to the log.
"""

from __future__ import annotations

import re
from html import escape

from ..results import CellResult, RunResult, Status
from .junit import escape_visible
from .summary import comparison_lines, failing_tests, grid, reason, verdict_line

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1200px;
       padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.meta { color: var(--muted); margin: 0; }
.verdict { font-size: 16px; font-weight: 600; padding: 10px 14px; border-radius: 6px;
           margin: 12px 0; }
.verdict.ok { background: #dafbe1; color: #116329; }
.verdict.bad { background: #ffebe9; color: #a40e26; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: left;
         vertical-align: top; }
thead th { background: #f6f8fa; }
table.grid td { min-width: 140px; font-weight: 600; }
table.grid td.entries { padding: 0; }
table.grid td a { text-decoration: none; display: block; padding: 6px 10px; }
table.grid td a + a { border-top: 1px solid var(--line); }
table.grid small { font-weight: 400; }
.passed { background: #dafbe1; color: #116329; }
.failed { background: #ffebe9; color: #a40e26; }
.error { background: #fbefff; color: #6e2cb8; }
.timeout { background: #fff8c5; color: #7d4e00; }
.skipped, .absent { background: #f6f8fa; color: #59636e; }
.cancelled { background: #fff1e5; color: #953800; }
.allowed { font-weight: 400; font-style: italic; }
table.tests td { text-align: center; min-width: 70px; }
table.tests th.test { font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
                      font-weight: 400; max-width: 520px; overflow-wrap: normal; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; padding: 0 12px; }
summary { cursor: pointer; padding: 8px 0; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         margin-right: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0 0 12px; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; max-height: 320px; font-size: 12px; }
.legend span { padding: 2px 8px; margin-right: 6px; border-radius: 4px; }
ul.changes { list-style: none; padding: 0; } ul.changes li { margin: 4px 0; }
"""

# OCI annotation keys worth showing (licence and provenance of the base image).
LABELS = ("org.opencontainers.image.licenses", "org.opencontainers.image.source",
          "org.opencontainers.image.version", "org.opencontainers.image.revision",
          "org.opencontainers.image.created", "org.opencontainers.image.title")


def _size(size: int) -> str:
    if size <= 0:
        return "-"
    return f"{size / 1_000_000:.1f} MB"


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _anchor(cell_id: str) -> str:
    return f"cell-{cell_id}"


def _changes(run: RunResult) -> str:
    lines = comparison_lines(run)
    if not lines:
        return ""
    title = f"Compared with baseline {escape(run.baseline)}" if run.baseline else "Notes"
    css = {"new failure": "failed", "fixed": "passed", "still failing": "error",
           "flaky": "timeout", "unexpected pass": "cancelled", "not gating": "timeout"}
    items = "".join(f'<li><span class="badge {css.get(kind, "skipped")}">{escape(kind)}</span>'
                    f"{escape(text)}</li>" for kind, text in lines)
    return f'<h2>{title}</h2><ul class="changes">{items}</ul>'


def _grid(run: RunResult) -> str:
    rows, cols, at = grid(run.cells)
    head = "".join(f"<th>{escape(c or '(default)')}</th>" for c in cols)
    body = []
    for row in rows:
        tds = []
        for col in cols:
            entries = at.get((row, col), [])
            if not entries:
                tds.append('<td class="absent">-</td>')
                continue
            parts = []
            for entry in entries:
                cell = entry.cell
                label = f"{escape(entry.label)}: " if entry.label else ""
                allowed = ' <span class="allowed">(allowed to fail)</span>' \
                    if not cell.gating else ""
                time = "" if cell.status is Status.SKIPPED \
                    else f"<br><small>{_seconds(cell.duration_s)}</small>"
                # each cell of a crossing in its own colour: "latest: passed" stays green
                # beside "min: failed (allowed to fail)"
                parts.append(f'<a class="{cell.status}" href="#{escape(_anchor(cell.id))}" '
                             f'title="{escape(escape_visible(cell.reason or str(cell.status)))}">'
                             f"{label}{cell.status}{allowed}{time}</a>")
            tds.append(f'<td class="entries">{"".join(parts)}</td>')
        body.append(f"<tr><th>{escape(row)}</th>{''.join(tds)}</tr>")
    legend = "".join(f'<span class="{s}">{s}</span>' for s in Status)
    return (f'<table class="grid"><thead><tr><th>python</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
            f'<p class="legend">{legend}</p>')


def _breakable(name: str) -> str:
    """A test id that wraps at its own separators (after "::", ".", "/", "[", "-"),
    never in the middle of a word."""
    parts = re.split(r"(?<=::)|(?<=[./\[-])", name)
    return "<wbr>".join(escape(part) for part in parts)


def _failing(run: RunResult) -> str:
    failing = failing_tests(run.cells)
    if not failing:
        return "<p>No test failed.</p>"
    cells = [c for c in run.cells if c.cases]
    # keyed as failing_tests keys them, so the lookup below finds every test
    outcome = {c.id: {escape_visible(t.key): t.outcome for t in c.cases} for c in cells}
    head = "".join(f'<th><a href="#{escape(_anchor(c.id))}">{escape(c.id)}</a></th>'
                   for c in cells)
    marks = {"failed": "failed", "error": "error", "passed": "passed", "skipped": "skipped"}
    why = run.insights.why_exempt() if run.insights is not None else {}
    rows = []
    for test, message, _ in failing[:500]:
        tds = []
        for cell in cells:
            got = outcome[cell.id].get(test)
            css = marks.get(got or "", "absent")
            held = why.get((test, cell.id)) if got in ("failed", "error") else None
            note = (f' title="not gating: {escape(held)}"', "<br><small>not gating</small>") \
                if held else ("", "")
            tds.append(f'<td class="{css}"{note[0]}>{escape(got or "-")}{note[1]}</td>')
        title = f' title="{escape(message)}"' if message else ""
        rows.append(f'<tr><th class="test"{title}>{_breakable(test)}</th>{"".join(tds)}</tr>')
    more = f"<p>... and {len(failing) - 500} more (see junit.xml).</p>" \
        if len(failing) > 500 else ""
    return (f'<table class="tests"><thead><tr><th>test</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{more}")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(cell: CellResult) -> list[tuple[str, str]]:
    """How the project was installed, and its own dependencies at the versions the cell
    had (a "min" cell shows its floors here)."""
    install = cell.install
    if not (install.resolver or cell.packages):
        return []
    versions = {_normal(k): v for k, v in cell.packages.items()}
    rows: list[tuple[str, str]] = []
    if install.resolver:
        what = [f"resolver {install.resolver}"]
        if install.extras:
            what.append("extras " + ", ".join(install.extras))
        if install.groups:
            what.append("groups " + ", ".join(install.groups))
        if install.requirements:
            what.append("requirements " + ", ".join(install.requirements))
        if install.artifact:
            what.append("artifact " + install.artifact)
        rows.append(("install", escape("; ".join(what))))
    if install.project:
        version = versions.get(_normal(install.project), "not installed")
        rows.append(("project", f"<code>{escape(install.project)} {escape(version)}</code>"))
    if install.requires:
        items = []
        for requirement in install.requires:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            name = match[1] if match else requirement
            found = versions.get(_normal(name))
            items.append(f"<code>{escape(requirement)}</code> &rarr; "
                         + (f"<code>{escape(found)}</code>" if found else "not installed"))
        rows.append(("dependencies", "<br>".join(items)))
    rows.append(("packages", f"{len(cell.packages)} installed (results.json)"))
    return rows


def _details(cell: CellResult) -> str:
    tests = cell.tests
    counts = (f"{tests.passed} passed, {tests.failed} failed, {tests.errors} errors, "
              f"{tests.skipped} skipped" if tests.total else "no per-test results")
    rows: list[tuple[str, str]] = [
        ("status", f'<span class="badge {cell.status}">{cell.status}</span>'
                   + (" allowed to fail" if not cell.gating else "")),
        ("reason", escape(escape_visible(reason(cell) or "-"))),
        ("exit code", "-" if cell.exit_code is None else str(cell.exit_code)),
        ("tests", escape(counts)),
        ("image", f"<code>{escape(cell.image)}</code>"),
        ("digest", f"<code>{escape(cell.image_digest or '-')}</code>"),
        ("interpreter", escape(f"{cell.interpreter.implementation} "
                               f"{cell.interpreter.version}".strip() or "-")
         + (f" <code>{escape(cell.interpreter.executable)}</code>"
            if cell.interpreter.executable else "")),
        ("platform / engine", escape(f"{cell.platform} / {cell.engine or '-'}"
                                     + (f" on {cell.node}" if cell.node else ""))),
        ("timings", escape(f"build {_seconds(cell.build_s)}, run {_seconds(cell.run_s)}, "
                           f"total {_seconds(cell.duration_s)}")),
        ("image sizes", escape(f"base {_size(cell.base_size)}, built "
                               f"{_size(cell.image_size)}")),
    ]
    rows += _installed(cell)
    if len(cell.attempts) > 1:
        rows.append(("attempts", "<br>".join(
            escape(escape_visible(f"{a.number}: {a.status} {a.stage} {a.reason} "
                                  f"({_seconds(a.duration_s)})")) for a in cell.attempts)))
    for key in LABELS:
        value = cell.base_labels.get(key)
        if value:
            shown = (f'<a href="{escape(value)}">{escape(value)}</a>'
                     if value.startswith("https://") else escape(value))
            rows.append((key.rsplit(".", 1)[-1], shown))
    if cell.log:
        rows.append(("log", f'<a href="{escape(cell.log)}">{escape(cell.log)}</a>'))
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    failed = [c for c in cell.cases if c.outcome in ("failed", "error")]
    failures = failed[:20]
    pre = "".join(f"<p><code>{escape(escape_visible(f'{c.classname}::{c.name}'))}</code></p>"
                  f"<pre>{escape(escape_visible((c.message + chr(10) + c.text).strip()))}</pre>"
                  for c in failures)
    if len(failed) > len(failures):
        pre += (f"<p>... and {len(failed) - len(failures)} more failures "
                f"(cells/{escape(cell.id)}.xml)</p>")
    open_attr = " open" if cell.status in (Status.FAILED, Status.ERROR, Status.TIMEOUT) \
        and cell.gating else ""
    return (f'<details id="{escape(_anchor(cell.id))}"{open_attr}><summary>'
            f'<span class="badge {cell.status}">{cell.status}</span>{escape(cell.id)} '
            f"<small>({escape(counts)}; {_seconds(cell.duration_s)})</small></summary>"
            f"<dl>{items}</dl>{pre}</details>")


def render(run: RunResult) -> str:
    """The whole page."""
    ok = "ok" if run.gate_passed else "bad"
    meta = (f"run {escape(run.run_id)} · started {escape(run.started_at)} · "
            f"{escape(run.config)}" + (f" · profile {escape(run.profile)}" if run.profile
                                       else ""))
    details = "".join(_details(c) for c in run.cells)
    from . import nightly_html  # the run history's sections (none without insights)

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tagmatrix: {escape(verdict_line(run))}</title>
<style>{CSS}{nightly_html.CSS if run.insights else ""}</style></head>
<body>
<h1>tagmatrix</h1>
<p class="meta">{meta}</p>
<p class="verdict {ok}">{escape(verdict_line(run))}</p>
{_changes(run)}
<h2>Python &times; variant</h2>
{_grid(run)}
<h2>Failing tests</h2>
{_failing(run)}{nightly_html.render(run)}
<h2>Cells</h2>
{details}
</body></html>
"""
