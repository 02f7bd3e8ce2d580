"""A run against an earlier one (``--baseline``): what broke, what got fixed, and why.

Per cell and per test: ``new failure`` (passed or absent before, fails now),
``fixed``, ``still failing``, ``flaky`` (passed on a retry, or differently
across attempts), ``unchanged``, ``new cell``. A cell that regressed is
attributed: did the project change, did the base image move, or both? From
the project's content digest, the base image digest and the version the
interpreter itself reported, before and after.
"""

from __future__ import annotations

from dataclasses import replace

from .changes import Change, Comparison
from .results import CellResult, RunResult, Status

_BAD = (Status.FAILED, Status.ERROR, Status.TIMEOUT)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "?"


def attribute(before: CellResult, after: CellResult) -> str:
    """Why a cell's outcome may have changed: the project, the base image, both, neither."""
    project = bool(before.project_digest and after.project_digest
                   and before.project_digest != after.project_digest)
    versions = (before.interpreter.version, after.interpreter.version)
    digests = (before.image_digest, after.image_digest)
    base = (all(digests) and digests[0] != digests[1]) or \
        (all(versions) and versions[0] != versions[1])
    if base:
        moved = f"{versions[0] or '?'} → {versions[1] or '?'}" if versions[0] != versions[1] \
            else f"{versions[1] or '?'}, rebuilt"
        base_text = f"base image moved: {moved} ({_short(digests[0])} → {_short(digests[1])})"
    else:
        base_text = f"base image unchanged ({versions[1] or '?'}, {_short(digests[1])})"
    if base and project:
        return f"{base_text}, and the project changed"
    if base:
        return f"{base_text}, project unchanged"
    if project:
        return f"project changed, {base_text}"
    if not (before.project_digest and after.project_digest):
        return f"{base_text}; the project's content was not recorded in both runs"
    return f"neither the project nor the base image changed ({versions[1] or '?'}): " \
           "look for flakiness or the environment"


def _tests(before: CellResult | None,
           after: CellResult) -> tuple[tuple[Change, tuple[str, ...]], ...]:
    was = set(before.failing_tests) if before else set()
    now = set(after.failing_tests)
    ran = {c.key for c in after.cases}
    # a test is fixed when it ran and passed, or when the whole cell passed; one that
    # did not run in a failing cell (it ran no tests, or only some) was not fixed
    fixed = sorted(t for t in was - now if t in ran or after.status is Status.PASSED)
    if after.status not in (Status.PASSED, Status.FAILED):
        fixed = []
    tests = ((Change.NEW_FAILURE, sorted(now - was)), (Change.FIXED, fixed),
             (Change.STILL_FAILING, sorted(now & was)), (Change.FLAKY, sorted(after.flaky_tests)))
    return tuple((change, tuple(keys)) for change, keys in tests if keys)


def _cell_change(before: CellResult | None, after: CellResult) -> Change:
    if before is None:
        return Change.NEW_CELL
    if len({a.status for a in after.attempts}) > 1 and after.status is Status.PASSED:
        return Change.FLAKY  # passed on a retry
    was_bad, now_bad = before.status in _BAD, after.status in _BAD
    if now_bad and not was_bad:
        return Change.NEW_FAILURE
    if was_bad and after.status is Status.PASSED:
        return Change.FIXED
    if was_bad and now_bad:
        # failing in a new way is a new failure: a cell whose tests failed and that now
        # runs none (a conftest that no longer imports, exit 4), errors or hangs would
        # otherwise hide behind the failures it had
        if before.status is not after.status or (before.tests.total and not after.tests.total):
            return Change.NEW_FAILURE
        return Change.STILL_FAILING
    return Change.UNCHANGED


def compare(run: RunResult, baseline: RunResult) -> RunResult:
    """``run`` with each cell's comparison against ``baseline`` filled in."""
    earlier = {c.id: c for c in baseline.cells}
    cells = []
    for cell in run.cells:
        if cell.status in (Status.SKIPPED, Status.CANCELLED):
            cells.append(cell)
            continue
        before = earlier.get(cell.id)
        change = Comparison(_cell_change(before, cell), _tests(before, cell))
        if before is not None and change.regressed:
            change = replace(change, attribution=attribute(before, cell))
        cells.append(replace(cell, comparison=change))
    return replace(run, cells=tuple(cells), baseline=baseline.run_id or "baseline")


def regressed(run: RunResult) -> list[CellResult]:
    """Gating cells with a new failure (of the cell, or of one of its tests)."""
    return [c for c in run.cells if c.gating and c.comparison is not None
            and c.comparison.regressed]


def unexpected_passes(run: RunResult) -> list[CellResult]:
    """Cells allowed to fail that passed: candidates to become required."""
    return [c for c in run.cells if not c.gating and c.status is Status.PASSED]
