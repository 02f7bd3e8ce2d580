"""GitHub Actions workflow commands: a folding group per cell, annotations for failures.

Printed on stdout after the summary when ``GITHUB_ACTIONS=true`` (the step
summary itself is summary.md, appended to ``$GITHUB_STEP_SUMMARY``). A cell's
output comes from its tests, so it is printed between ``::stop-commands::``
markers: a test printing ``::set-env`` or ``::add-mask`` must not drive the
runner.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from rich.console import Console

from ..changes import Change
from ..compare import unexpected_passes
from ..gates import gating_cells
from ..results import RunResult, Status
from .junit import escape_visible
from .summary import reason


@contextlib.contextmanager
def fenced(console: Console) -> Iterator[None]:
    """What ``console`` prints meanwhile is not read as workflow commands (the terminal
    summary quotes test ids, messages and build output, which tests choose)."""
    token = secrets.token_hex(8)
    console.file.flush()
    print(f"::stop-commands::{token}", file=console.file, flush=True)
    try:
        yield
    finally:
        console.file.flush()
        print(f"::{token}::", file=console.file, flush=True)


def _data(text: str) -> str:
    # https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def commands(run: RunResult, *, token: str | None = None) -> list[str]:
    """The lines to print: groups with each cell's output, then annotations."""
    token = token or secrets.token_hex(8)
    lines: list[str] = []
    for cell in run.cells:
        if cell.status is Status.SKIPPED:
            continue
        lines.append(f"::group::tagmatrix {cell.id}: {cell.status}"
                     + (f" ({_data(reason(cell))})" if cell.reason else ""))
        lines.append(f"::stop-commands::{token}")
        lines.extend(escape_visible(cell.output_tail).splitlines() or ["(no output)"])
        lines.append(f"::{token}::")
        lines.append("::endgroup::")
    # ::error for exactly what fails the run; a failing cell that does not (the gate is
    # regressions and nothing in it newly fails) is a warning, its tests' reasons below
    gating = gating_cells(run)
    errors = {c.id for c in gating}
    for cell in run.cells:
        if cell.gating and not cell.released and \
                cell.status in (Status.FAILED, Status.ERROR, Status.TIMEOUT):
            level = "error" if cell.id in errors else "warning"
            why = "" if cell.id in errors else " (not gating: no new failure that gates)"
            lines.append(f"::{level} title={_property(f'tagmatrix {cell.id} {cell.status}')}::"
                         f"{_data(escape_visible(reason(cell) + why))}")
    held = run.insights.exempt() if run.insights is not None else set()
    for cell in gating:
        comparison = cell.comparison
        if comparison is None or not comparison.regressed:
            continue
        tests = [t for t in comparison.tests_of(Change.NEW_FAILURE) if (t, cell.id) not in held]
        if not tests and comparison.cell is not Change.NEW_FAILURE:
            continue  # its only new failures do not gate (the warnings below say why)
        what = ", ".join(tests) if tests else f"the cell {cell.status}"
        attribution = comparison.attribution
        lines.append(f"::error title={_property(f'new failure in {cell.id}')}::"
                     f"{_data(escape_visible(what + (f'; {attribution}' if attribution else '')))}")
    for cell in unexpected_passes(run):
        lines.append(f"::notice title={_property(f'{cell.id} passes')}::"
                     f"{cell.id} is allowed to fail but passed: consider making it required")
    if run.insights is not None:  # the history's gates and what does not gate
        from .nightly import github_annotations

        lines += [f"::{level} title={_property(title)}::{_data(escape_visible(text))}"
                  for level, title, text in github_annotations(run)]
    return lines
