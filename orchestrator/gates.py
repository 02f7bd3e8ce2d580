"""``--fail-on``: which of the run's findings fail it (pure; the CLI maps it to the exit code).

- ``failures`` (the default): a gating cell failed, errored or timed out; a cell whose
  only failing tests are quarantined does not gate;
- ``regressions``: only what newly fails against ``--baseline`` (a file or ``auto``),
  leaving out tests the history knows as flaky and quarantined tests;
- ``slowdowns``: a test of a gating cell got slower than ``slowdown:`` allows;
- ``new-warnings``: a warning that no cell of the baseline raised.

``failures`` and ``regressions`` exclude each other; the other two add to either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .changes import Change
from .errors import UsageError
from .insights import Exemption, Gate, Insights
from .results import RunResult, Status


@dataclass(frozen=True)
class GateResult:
    """One gate: whether it fails the run, and the findings that make it fail."""

    gate: Gate
    failed: bool
    findings: tuple[str, ...] = ()


def parse_fail_on(values: Iterable[str] | None) -> tuple[Gate, ...]:
    """``--fail-on`` values (repeatable, comma-separated) as gates, ``failures`` unless
    ``regressions`` is chosen; a usage error for an unknown or contradictory one."""
    chosen: list[Gate] = []
    known = ", ".join(g.value for g in Gate)
    for value in values or ():
        for part in (p.strip() for p in value.split(",") if p.strip()):
            try:
                gate = Gate(part)
            except ValueError as exc:
                raise UsageError(f"--fail-on {part!r}: not one of {known}") from exc
            if gate not in chosen:
                chosen.append(gate)
    if Gate.FAILURES in chosen and Gate.REGRESSIONS in chosen:
        raise UsageError("--fail-on failures and regressions exclude each other",
                         hint="failures: any failing gating cell; regressions: only new "
                              "failures against --baseline")
    if Gate.REGRESSIONS not in chosen and Gate.FAILURES not in chosen:
        chosen.insert(0, Gate.FAILURES)
    return tuple(chosen)


def evaluate(run: RunResult, fail_on: Sequence[Gate] | None = None) -> list[GateResult]:
    """Every chosen gate (``fail_on``: else the run's own, else failures) on ``run``."""
    insights = run.insights or Insights()
    gates = tuple(fail_on) if fail_on is not None else insights.fail_on
    out = []
    for gate in gates:
        findings = _findings(gate, run, insights)
        out.append(GateResult(gate, bool(findings), tuple(findings)))
    return out


def _findings(gate: Gate, run: RunResult, insights: Insights) -> list[str]:
    gating = {c.id for c in run.cells if c.gating}
    match gate:
        case Gate.FAILURES:
            return [f"{c.id}: {c.status}" for c in run.cells if not c.ok]
        case Gate.REGRESSIONS:
            return regressions(run, insights)
        case Gate.SLOWDOWNS:
            return [s.describe() for s in insights.slowdowns if s.cell in gating]
        case Gate.NEW_WARNINGS:
            return [f"new warning: {k}" for k in insights.new_warnings or ()]
    raise AssertionError(gate)  # pragma: no cover - every Gate is matched above


def regressions(run: RunResult, insights: Insights) -> list[str]:
    """New failures of gating cells against the baseline, but for flaky and quarantined
    tests (``insights.held``)."""
    exempt = insights.exempt((Exemption.FLAKY, Exemption.QUARANTINE))
    found = []
    for cell in run.cells:
        comparison = cell.comparison
        if not cell.gating or comparison is None or not comparison.regressed:
            continue
        tests = [t for t in comparison.tests_of(Change.NEW_FAILURE) if (t, cell.id) not in exempt]
        found += [f"{cell.id}: {t}: new failure" for t in tests]
        if comparison.cell is Change.NEW_FAILURE and not tests:
            # the cell newly fails: only through exempt tests, or for itself (an error)
            excused = cell.status is Status.FAILED and bool(cell.failing_tests) and all(
                (t, cell.id) in exempt for t in cell.failing_tests)
            if not excused:
                found.append(f"{cell.id}: new failure ({cell.status})")
    return found


def failed(results: Sequence[GateResult]) -> bool:
    return any(r.failed for r in results)
