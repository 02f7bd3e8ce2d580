"""``--fail-on``: the run's gate and the checks added to it (pure; results.py's
``RunResult.gate_passed`` decides the exit code from them).

- ``failures`` (the default gate): a gating cell failed, errored or timed out; a cell
  whose only failing tests are quarantined does not gate;
- ``regressions`` (the other gate): only what newly fails against ``--baseline`` (a
  file or ``auto``), leaving out tests the history knows as flaky and quarantined ones;
- ``slowdowns`` (a check): a test of a gating cell got slower than ``slowdown:`` allows;
- ``new-warnings`` (a check): a warning that no cell of the baseline raised.

The two gates exclude each other; the checks add to either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from .changes import Change
from .errors import UsageError
from .insights import Check
from .results import CellResult, Gate, RunResult

_KNOWN = ", ".join([*(g.value for g in Gate), *(c.value for c in Check)])


@dataclass(frozen=True)
class GateResult:
    """The gate or one check: whether it fails the run, and what it found."""

    name: str  # a Gate's or a Check's value
    failed: bool
    findings: tuple[str, ...] = ()


def parse_fail_on(values: Iterable[str] | None) -> tuple[Gate, tuple[Check, ...]]:
    """``--fail-on`` values (repeatable, comma-separated): the gate (``failures`` unless
    ``regressions`` is given) and the checks; a usage error for an unknown or
    contradictory value."""
    gates: list[Gate] = []
    checks: list[Check] = []
    for value in values or ():
        for part in (p.strip() for p in value.split(",") if p.strip()):
            if part in {g.value for g in Gate}:
                gates += [Gate(part)] if Gate(part) not in gates else []
            elif part in {c.value for c in Check}:
                checks += [Check(part)] if Check(part) not in checks else []
            else:
                raise UsageError(f"--fail-on {part!r}: not one of {_KNOWN}")
    if len(gates) > 1:
        raise UsageError("--fail-on failures and regressions exclude each other",
                         hint="failures: any failing gating cell; regressions: only new "
                              "failures against --baseline")
    return (gates[0] if gates else Gate.FAILURES), tuple(checks)


def regressions(run: RunResult) -> list[str]:
    """The new failures that gate: of gating cells, but for tests held (flaky,
    quarantined); a cell that newly fails for itself (an error) is one too."""
    held = run.insights.exempt() if run.insights is not None else set()
    found = []
    for cell in run.regressed():
        comparison = cell.comparison
        assert comparison is not None  # regressed() keeps only compared cells
        tests = [t for t in comparison.tests_of(Change.NEW_FAILURE) if (t, cell.id) not in held]
        found += [f"{cell.id}: {t}: new failure" for t in tests]
        if not tests:
            found.append(f"{cell.id}: new failure ({cell.status})")
    return found


def gating_cells(run: RunResult) -> list[CellResult]:
    """The cells that fail the run by its gate (a CI annotation marks these as errors,
    and only these): failing gating cells but those failing only through quarantined
    tests; with ``regressions``, only those with a new failure that gates."""
    match run.gate:
        case Gate.FAILURES:
            return [c for c in run.cells if not c.ok]
        case Gate.REGRESSIONS:
            return run.regressed()
        case _:
            assert_never(run.gate)


def evaluate(run: RunResult) -> list[GateResult]:
    """The run's gate, then every check it asked for, with their findings."""
    if run.gate is Gate.REGRESSIONS:
        found = regressions(run)
    else:
        found = [f"{c.id}: {c.status}" for c in run.cells if not c.ok]
    out = [GateResult(run.gate.value, bool(found), tuple(found))]
    if run.insights is not None:
        for check in run.insights.checks:
            findings = run.insights.findings(check, run)
            out.append(GateResult(check.value, bool(findings), tuple(findings)))
    return out
