"""Cell results as values, and results.json, the contract other tools read.

A failing test is a result (``failed``), not an exception; infrastructure
faults end a cell as ``error`` with the reason kept.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from .changes import Change, Comparison
from .containerrecords import (
    MAX_PACKAGES,
    InstallRecord,
    Interpreter,
    packages_from_record,
    text,
)
from .errors import Stage

if TYPE_CHECKING:  # imported where used: a value module stays cheap to import
    from .insights import Insights
    from .warnings_ledger import WarningRecord

SCHEMA_VERSION = 1
# what matrix.cell_id makes: a slug that is a file name, never a path
_CELL_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # fullmatch: "$" allows a "\n"


class Status(enum.StrEnum):
    """How a cell ended."""

    PASSED = "passed"
    FAILED = "failed"  # the tests ran and some failed
    ERROR = "error"  # infrastructure: build, image, engine, results unreadable, OOM
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"



class TestOutcome(enum.StrEnum):
    """How one test ended."""

    __test__ = False  # not a pytest class

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


    @property
    def bad(self) -> bool:
        return self in (TestOutcome.FAILED, TestOutcome.ERROR)


@dataclass(frozen=True, kw_only=True)
class TestCase:
    """One per-test result from the cell's inner JUnit."""

    __test__ = False  # not a pytest class

    classname: str
    name: str
    time: float = 0.0
    outcome: TestOutcome = TestOutcome.PASSED
    message: str = ""
    type: str = ""
    text: str = ""  # failure/error body (traceback)
    system_out: str = ""
    system_err: str = ""
    flaky: bool = False  # passed after reruns recorded in the JUnit (flaky*/rerun*)

    @property
    def key(self) -> str:
        """How a test is named across runs: ``classname::name``."""
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True, kw_only=True)
class TestCounts:
    __test__ = False

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, cases: list[TestCase] | tuple[TestCase, ...]) -> TestCounts:
        """Counts recomputed from the cases (never trusted from the file's attributes)."""
        outcomes = [c.outcome for c in cases]
        return cls(total=len(outcomes), passed=outcomes.count(TestOutcome.PASSED),
                   failed=outcomes.count(TestOutcome.FAILED),
                   errors=outcomes.count(TestOutcome.ERROR),
                   skipped=outcomes.count(TestOutcome.SKIPPED))


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One try at a cell. Only infrastructure errors are tried again."""

    number: int
    status: Status
    reason: str = ""
    stage: Stage = Stage.NONE
    duration_s: float = 0.0
    started_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value, "stage": self.stage.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(**{**data, "status": Status(data["status"]),
                      "stage": _stage(data.get("stage"))})


def _stage(value: Any) -> Stage:
    """A stage read back from results.json; an unknown one is not a stage."""
    return Stage(value) if value in {s.value for s in Stage} else Stage.NONE


@dataclass(frozen=True, kw_only=True)
class CellResult:
    """The outcome of one cell."""

    id: str
    python: str
    variant: str
    axes: dict[str, str] = field(default_factory=dict)
    image: str = ""  # the base image reference
    image_digest: str = ""
    built_image: str = ""
    base_size: int = 0  # bytes, the base image as the engine stores it
    image_size: int = 0  # bytes, the built image (base included)
    base_labels: dict[str, str] = field(default_factory=dict)  # OCI labels: licence, source
    platform: str = "linux"
    engine: str = ""
    node: str = ""  # where the tests ran: the engine's host, or a Swarm task's node
    pull_s: float = 0.0  # a Swarm node's pull of the image (and container creation)
    status: Status
    reason: str = ""
    stage: Stage = Stage.NONE  # where an error happened
    gating: bool = True
    exit_code: int | None = None
    duration_s: float = 0.0
    build_s: float = 0.0
    run_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    log: str = ""  # path relative to the reports folder
    tests: TestCounts = field(default_factory=TestCounts)
    cases: tuple[TestCase, ...] = ()
    interpreter: Interpreter = field(default_factory=Interpreter)
    output_tail: str = ""  # the end of the container's output, for reports
    attempts: tuple[Attempt, ...] = ()  # every try, the last one included
    project_digest: str = ""  # content of the build context (paths, modes, bytes)
    packages: dict[str, str] = field(default_factory=dict)  # installed: name -> version
    install: InstallRecord = field(default_factory=InstallRecord)
    failing_tests: tuple[str, ...] = ()  # test keys that failed or errored
    flaky_tests: tuple[str, ...] = ()
    comparison: Comparison | None = None  # against --baseline
    warnings: tuple[WarningRecord, ...] | None = None  # the warnings ledger; None: not run
    warnings_dropped: int = 0  # occurrences the ledger's caps left out
    quarantined: tuple[str, ...] = ()  # failing tests a quarantine entry keeps from gating
    carried_from: str = ""  # --rerun-failed: the earlier run whose result this cell keeps

    @property
    def ok(self) -> bool:
        """Whether this cell lets the run pass."""
        return self.status in (Status.PASSED, Status.SKIPPED) or not self.gating \
            or self.released

    def excused(self, held: set[tuple[str, str]]) -> bool:
        """Whether its new failures are only tests that do not gate: ``held`` (test, cell)
        pairs; a cell that newly fails for itself (an error) is never excused."""
        comparison = self.comparison
        if comparison is None:
            return False
        if any((t, self.id) not in held for t in comparison.tests_of(Change.NEW_FAILURE)):
            return False
        if comparison.cell is Change.NEW_FAILURE:
            return self.status is Status.FAILED and bool(self.failing_tests) and all(
                (t, self.id) in held for t in self.failing_tests)
        return True

    @property
    def released(self) -> bool:
        """It failed only through quarantined tests: reported, but it does not gate."""
        return self.status is Status.FAILED and bool(self.failing_tests) \
            and set(self.failing_tests) <= set(self.quarantined)

    def to_json(self) -> dict[str, Any]:
        # field by field: asdict() would deep-copy every test case only to drop them
        # (per-test cases live in the JUnit files, not in results.json)
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                                if f.name not in ("cases", "output_tail")}
        data.update(
            axes=dict(self.axes), base_labels=dict(self.base_labels),
            packages=dict(self.packages), status=self.status.value, stage=self.stage.value,
            tests=asdict(self.tests), interpreter=asdict(self.interpreter),
            install=asdict(self.install), attempts=[a.to_json() for a in self.attempts],
            failing_tests=list(self.failing_tests), flaky_tests=list(self.flaky_tests),
            comparison=self.comparison.to_json() if self.comparison else {},
            warnings=None if self.warnings is None else [w.to_json() for w in self.warnings],
            quarantined=list(self.quarantined))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        """From results.json: untrusted input (a file anyone may hand to `report`): a
        cell id must be what tagmatrix makes (it names files), a log path its own."""
        fields = dict(data)
        cell_id = fields.get("id")
        if not isinstance(cell_id, str) or not _CELL_ID.fullmatch(cell_id):
            raise ValueError(f"{str(cell_id)[:80]!r} is not a cell id")
        if fields.get("log") not in ("", f"logs/{cell_id}.log"):
            fields["log"] = ""
        fields["status"] = Status(fields["status"])
        fields["stage"] = _stage(fields.get("stage"))
        fields["comparison"] = Comparison.from_json(fields.get("comparison"))
        fields["tests"] = TestCounts(**fields.get("tests", {}))
        fields["interpreter"] = Interpreter.from_record(fields.get("interpreter") or {})
        fields["install"] = InstallRecord.from_record(_install_json(fields.get("install")))
        fields["packages"] = packages_from_record({"packages": fields.get("packages")})
        fields["attempts"] = tuple(Attempt.from_json(a) for a in fields.get("attempts", []))
        fields["failing_tests"] = tuple(fields.get("failing_tests", ()))
        fields["flaky_tests"] = tuple(fields.get("flaky_tests", ()))
        held = fields.get("quarantined")
        fields["quarantined"] = tuple(text(t) for t in held[:MAX_PACKAGES]) \
            if isinstance(held, list) else ()
        if not isinstance(fields.get("carried_from", ""), str):
            fields["carried_from"] = ""
        fields["carried_from"] = text(fields.get("carried_from", ""))[:80]
        if not isinstance(fields.get("warnings_dropped", 0), int):
            fields["warnings_dropped"] = 0
        if fields.get("warnings") is not None:
            from .warnings_ledger import records_from

            fields["warnings"] = records_from(fields["warnings"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})


def _install_json(data: Any) -> dict[str, Any]:
    """results.json keeps InstallRecord flat; from_record reads the in-container shape."""
    if not isinstance(data, dict):
        return {}
    return {**data, "project": {"name": data.get("project", ""),
                                "requires": data.get("requires", [])}}


class Gate(enum.StrEnum):
    """What decides a run's exit code (``--fail-on``)."""

    FAILURES = "failures"  # any gating cell that failed, errored or timed out
    REGRESSIONS = "regressions"  # only new failures against the baseline


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """All cells of a run, in plan order."""

    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    cells: tuple[CellResult, ...]
    config: str = ""
    profile: str | None = None
    cancelled: str | None = None  # the signal's name when the run was interrupted
    baseline: str | None = None  # run id of the results compared against (--baseline)
    gate: Gate = Gate.FAILURES
    insights: Insights | None = None  # what the run history says (orchestrator/insights.py)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cells) and self.cancelled is None

    @property
    def gate_passed(self) -> bool:
        """Whether the run exits 0: by its gate (a cancelled run never passes), and by the
        further checks ``--fail-on`` asked for (insights.py: slowdowns, new warnings)."""
        if self.cancelled is not None:
            return False
        if self.insights is not None and self.insights.failed_checks(self):
            return False
        match self.gate:
            case Gate.FAILURES:
                return self.ok
            case Gate.REGRESSIONS:
                return not self.regressed()
            case _:
                assert_never(self.gate)

    def regressed(self) -> list[CellResult]:
        """Gating cells with a new failure against the baseline, but for tests that do not
        gate (known as flaky, quarantined: ``insights.held``)."""
        held = self.insights.exempt() if self.insights is not None else set()
        return [c for c in self.cells if c.gating and c.comparison is not None
                and c.comparison.regressed and not c.excused(held)]

    def summary(self) -> dict[str, Any]:
        by_status = {s.value: 0 for s in Status}
        for cell in self.cells:
            by_status[cell.status.value] += 1
        return {
            "cells": len(self.cells),
            **by_status,
            "allowed_failures": [c.id for c in self.cells
                                 if not c.gating and c.status not in (Status.PASSED,
                                                                      Status.SKIPPED)],
            "tests": asdict(TestCounts(
                total=sum(c.tests.total for c in self.cells),
                passed=sum(c.tests.passed for c in self.cells),
                failed=sum(c.tests.failed for c in self.cells),
                errors=sum(c.tests.errors for c in self.cells),
                skipped=sum(c.tests.skipped for c in self.cells))),
            "ok": self.ok,
        }

    def to_json(self) -> dict[str, Any]:
        data = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "config": self.config,
            "profile": self.profile,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "cancelled": self.cancelled,
            "baseline": self.baseline,
            "gate": self.gate.value,
            "cells": [c.to_json() for c in self.cells],
            "summary": self.summary(),
        }
        if self.insights is not None:  # history, flaky, slowdowns, warnings_ledger, ...
            data.update(self.insights.to_json())
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        from .insights import Insights

        return cls(
            run_id=data.get("run_id", ""),
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            cells=tuple(CellResult.from_json(c) for c in data.get("cells", [])),
            config=data.get("config", ""),
            profile=data.get("profile"),
            cancelled=data.get("cancelled"),
            baseline=data.get("baseline"),
            gate=Gate(data["gate"]) if data.get("gate") in {g.value for g in Gate}
            else Gate.FAILURES,
            insights=Insights.from_json(data),
        )


MAX_RESULTS_BYTES = 256 * 1024 * 1024  # a results.json read back (10,000 cells fit easily)


def load_results(path: Path) -> RunResult:
    """Read a results.json written by tagmatrix: untrusted (anyone may hand one to
    `report` or `--baseline`), so never through a link, capped, and a nesting too deep
    for the JSON parser is a ValueError like any other malformed file."""
    from .files import read_capped

    data = read_capped(path, MAX_RESULTS_BYTES)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise ValueError("nested too deeply to be tagmatrix's") from exc
    return RunResult.from_json(parsed)
