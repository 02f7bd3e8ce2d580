"""The scheduler with a scripted fake engine (allowed for scheduler unit tests only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.celllog import CellLog
from orchestrator.config import load_config
from orchestrator.engine import (
    BaseImage,
    EngineInfo,
    Execution,
    Leftover,
    PreparedImage,
    RunContext,
    Slot,
    Slots,
)
from orchestrator.errors import BuildFailed, CellError, EngineUnavailable
from orchestrator.errors import ImageNotFound as ImageNotFoundError
from orchestrator.plan import SKIPPED, BuildSpec, Job, make_plan
from orchestrator.results import CellResult, Interpreter, Status
from orchestrator.scheduler import Options, Scheduler, backoff, classify
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]
PASS_XML = (b'<testsuite><testcase classname="t" name="a"/>'
            b'<testcase classname="t" name="b"/></testsuite>')
FAIL_XML = (b'<testsuite><testcase classname="t" name="a"><failure message="no"/></testcase>'
            b'</testsuite>')


class FakeEngine:
    """Scripted outcomes per cell id; records concurrency and build calls."""

    name = "fake"

    def __init__(self, script: dict[str, object], *, delay: float = 0.05) -> None:
        self.script = script
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self.builds: list[str] = []
        self.lock = threading.Lock()

    def info(self) -> EngineInfo:
        return EngineInfo(name="fake", os="linux", arch="x86_64", version="0")

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        outcome = self.script.get(job.id)
        if isinstance(outcome, BuildFailed):
            raise outcome
        with self.lock:
            self.builds.append(job.id)
        time.sleep(self.delay)
        base = BaseImage(reference=job.base_image, id="sha256:base", digest="sha256:d")
        return PreparedImage(reference="img", id="sha256:img", base=base)

    def execute(self, job: Job, image: PreparedImage, log: CellLog,
                ctx: RunContext) -> Execution:
        outcome = self.script.get(job.id, Execution(exit_code=0, junit=PASS_XML))
        if isinstance(outcome, Execution) and not outcome.interpreter.version:
            # a real cell reports the interpreter it ran (python 3.12 -> 3.12.0)
            outcome = replace(outcome, interpreter=Interpreter(version=f"{job.cell.python}.0"))
        with Slot(ctx, job.id):
            return self._contained(outcome, ctx)

    def _contained(self, outcome: object, ctx: RunContext) -> Execution:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            deadline = time.monotonic() + self.delay * 4
            while time.monotonic() < deadline:
                if ctx.cancel.is_set():
                    return Execution(exit_code=137, cancelled=True)
                time.sleep(0.005)
            if isinstance(outcome, Exception):
                raise outcome
            assert isinstance(outcome, Execution)
            return outcome
        finally:
            with self.lock:
                self.running -= 1

    def kill_run(self, ctx: RunContext) -> int:
        return 0

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        return []

    def remove(self, item: Leftover) -> None:
        pass

    def close(self) -> None:
        pass


def jobs(write: Write, matrix: str) -> list[Job]:
    config = load_config(write("matrix.yaml", matrix))
    return list(make_plan(config, Catalogue.builtin()).jobs)


def run(tmp_path: Path, engine: FakeEngine, job_list: list[Job], parallel: int = 2,
        cancel: threading.Event | None = None) -> tuple[Scheduler, dict[str, CellResult]]:
    ctx = RunContext(run_id="r", labels={}, cancel=cancel or threading.Event())
    scheduler = Scheduler(engine, job_list, reports=tmp_path / "reports", ctx=ctx,
                          options=Options(parallel=parallel))
    return scheduler, {r.id: r for r in scheduler.run()}


MATRIX = 'matrix:\n  python: ["3.10", "3.11", "3.12", "3.13"]\n  variant: [slim]\n'


def test_results_in_plan_order_and_bounded_parallelism(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({"3.11-slim": Execution(exit_code=1, junit=FAIL_XML)})
    _, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=2)
    assert list(results) == ["3.10-slim", "3.11-slim", "3.12-slim", "3.13-slim"]
    assert [str(r.status) for r in results.values()] == ["passed", "failed", "passed",
                                                         "passed"]
    assert engine.max_running == 2


def test_shared_build_is_built_once(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({})
    job_list = jobs(write, 'matrix:\n  python: ["3.12"]\n  mode: [a, b, c]\n')
    _, results = run(tmp_path, engine, job_list, parallel=3)
    assert len(engine.builds) == 1
    assert all(r.status is Status.PASSED for r in results.values())
    logs = [(tmp_path / f"reports/logs/3.12-{m}.log").read_text() for m in "abc"]
    assert sum("shared with cell" in text for text in logs) == 2


def test_build_failure_is_an_error_for_every_sharer(tmp_path: Path, write: Write) -> None:
    failure = BuildFailed("build failed: boom", stage="build")
    job_list = jobs(write, 'matrix:\n  python: ["3.12"]\n  mode: [a, b]\n')
    engine = FakeEngine({"3.12-a": failure, "3.12-b": failure})
    _, results = run(tmp_path, engine, job_list)
    for result in results.values():
        assert result.status is Status.ERROR
        assert result.stage == "build"


def test_engine_loss_ends_remaining_cells_as_error(tmp_path: Path, write: Write) -> None:
    lost = EngineUnavailable("lost the Docker engine")
    engine = FakeEngine({"3.10-slim": lost})
    scheduler, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=1)
    assert scheduler.engine_lost is lost
    statuses = [r.status for r in results.values()]
    assert statuses == [Status.ERROR] * 4
    assert results["3.13-slim"].reason == "not run: lost the Docker engine"
    assert results["3.13-slim"].stage == "engine"


def test_cancellation_marks_running_and_queued_cells(tmp_path: Path, write: Write) -> None:
    cancel = threading.Event()
    engine = FakeEngine({}, delay=0.2)
    threading.Timer(0.3, cancel.set).start()
    _, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=1, cancel=cancel)
    statuses = [r.status for r in results.values()]
    assert Status.CANCELLED in statuses
    assert statuses[-1] is Status.CANCELLED
    assert len(statuses) == 4


@pytest.mark.parametrize(("execution", "status", "needle"), [
    (Execution(exit_code=0, junit=PASS_XML), Status.PASSED, ""),
    (Execution(exit_code=1, junit=FAIL_XML), Status.FAILED, "1 failed"),
    (Execution(exit_code=0, junit=FAIL_XML), Status.FAILED, "although the command exited 0"),
    (Execution(exit_code=None, timed_out=True), Status.TIMEOUT, "timeout"),
    (Execution(exit_code=137), Status.ERROR, "SIGKILL"),
    (Execution(exit_code=137, oom_killed=True), Status.ERROR, "out of memory"),
    (Execution(exit_code=0, junit=b"<html/>"), Status.ERROR, "results"),
    (Execution(exit_code=0, junit=None, junit_error="no file"), Status.ERROR, "results missing"),
    (Execution(exit_code=2, junit=None), Status.FAILED, "exit code 2"),
    (Execution(exit_code=5, junit=b"<testsuite/>"), Status.FAILED, "no tests were collected"),
    (Execution(exit_code=252, setup_failed=True), Status.ERROR, "setup"),
])
def test_classify(write: Write, execution: Execution, status: Status, needle: str) -> None:
    job = jobs(write, 'matrix: {python: ["3.12"]}\n')[0]
    verdict = classify(job, replace(execution, interpreter=Interpreter(version="3.12.1")))
    assert verdict.status is status
    assert needle in verdict.reason


@pytest.mark.parametrize(("python", "ran", "needle"), [
    ("3.13", "3.12.1", "the image ran Python 3.12.1, but this cell is 3.13"),
    ("3.15-rc", "3.15.0", "a final release"),
    ("3.13", "", "reported no usable version"),
])
def test_a_cell_that_ran_another_interpreter_is_an_error_never_a_pass(
        write: Write, python: str, ran: str, needle: str) -> None:
    job = jobs(write, f'matrix: {{python: ["{python}"]}}\n')[0]
    for code, junit in ((0, PASS_XML), (1, FAIL_XML)):
        verdict = classify(job, Execution(exit_code=code, junit=junit,
                                          interpreter=Interpreter(version=ran)))
        assert verdict.status is Status.ERROR
        assert verdict.stage == "results"
        assert needle in verdict.reason


def test_a_hard_coded_from_is_named_in_the_reason(write: Write) -> None:
    write("Dockerfile", "FROM 127.0.0.1:5000/library/python:3.12-slim\n")
    job = jobs(write, 'matrix: {python: ["3.13"]}\nbuild: {dockerfile: Dockerfile}\n')[0]
    verdict = classify(job, Execution(exit_code=0, junit=PASS_XML,
                                      interpreter=Interpreter(version="3.12.1")))
    assert verdict.status is Status.ERROR
    assert verdict.reason == ("the image ran Python 3.12.1, but this cell is 3.13: does "
                              "Dockerfile's FROM use PYTHON_IMAGE (ARG PYTHON_IMAGE, "
                              "FROM ${PYTHON_IMAGE})?")


def test_interpreter_is_reported(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({"3.12": Execution(exit_code=0, junit=PASS_XML, interpreter=Interpreter(
        version="3.12.1", executable="/usr/local/bin/python"))})
    _, results = run(tmp_path, engine, jobs(write, 'matrix: {python: ["3.12"]}\n'))
    assert results["3.12"].interpreter.version == "3.12.1"


class FlakyEngine(FakeEngine):
    """Fails prepare with a scripted sequence of errors before succeeding."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__({}, delay=0.0)
        self.failures = failures
        self.prepares = 0

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        self.prepares += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().prepare(job, spec, log, ctx)


def run_with(tmp_path: Path, engine: FakeEngine, job_list: list[Job],
             retries: int = 2) -> dict[str, CellResult]:
    ctx = RunContext(run_id="r", labels={}, cancel=threading.Event())
    scheduler = Scheduler(engine, job_list, reports=tmp_path / "reports", ctx=ctx,
                          options=Options(parallel=1, retries=retries, backoff=0.01))
    return {r.id: r for r in scheduler.run()}


ONE = 'matrix: {python: ["3.12"]}\n'


def test_rate_limit_is_retried_and_every_attempt_kept(tmp_path: Path, write: Write) -> None:
    limited = CellError("pull: registry rate limit: toomanyrequests", stage="pull",
                        retryable=True)
    engine = FlakyEngine([limited])
    result = run_with(tmp_path, engine, jobs(write, ONE))["3.12"]
    assert result.status is Status.PASSED
    assert [(a.number, a.status, a.stage) for a in result.attempts] == [
        (1, Status.ERROR, "pull"), (2, Status.PASSED, "")]
    assert "toomanyrequests" in result.attempts[0].reason
    log = (tmp_path / "reports/logs/3.12.log").read_text()
    assert "attempt 1 failed (pull: pull: registry rate limit" in log


def test_retries_stop_at_the_configured_count(tmp_path: Path, write: Write) -> None:
    limited = CellError("429", stage="pull", retryable=True)
    engine = FlakyEngine([limited, limited, limited, limited])
    result = run_with(tmp_path, engine, jobs(write, ONE), retries=2)["3.12"]
    assert result.status is Status.ERROR
    assert len(result.attempts) == 3
    assert engine.prepares == 3


def test_permanent_errors_and_test_failures_are_never_retried(tmp_path: Path,
                                                              write: Write) -> None:
    engine = FlakyEngine([ImageNotFoundError("tag not found", stage="pull")])
    assert len(run_with(tmp_path, engine, jobs(write, ONE))["3.12"].attempts) == 1
    failing = FakeEngine({"3.12": Execution(exit_code=1, junit=FAIL_XML)}, delay=0.0)
    result = run_with(tmp_path, failing, jobs(write, ONE))["3.12"]
    assert result.status is Status.FAILED
    assert len(result.attempts) == 1


def test_a_shared_build_that_failed_transiently_is_built_again(tmp_path: Path,
                                                               write: Write) -> None:
    broken = BuildFailed("build failed: connection reset by peer", stage="build",
                         retryable=True)
    engine = FlakyEngine([broken])
    results = run_with(tmp_path, engine, jobs(write, 'matrix:\n  python: ["3.12"]\n'
                                                    "  mode: [a, b]\n"))
    assert [r.status for r in results.values()] == [Status.PASSED, Status.PASSED]
    assert engine.prepares == 2  # the failed build, then one shared rebuild


def test_backoff_grows_with_jitter() -> None:
    first = [backoff(1, 2.0) for _ in range(200)]
    third = [backoff(3, 2.0) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in first)
    assert all(4.0 <= d <= 8.0 for d in third)
    assert len({round(d, 6) for d in first}) > 100  # jittered, not a constant
    assert backoff(20, 2.0) <= 60.0


class TimedEngine(FakeEngine):
    """Records when each build and run starts and ends."""

    def __init__(self, build_s: float, run_s: float) -> None:
        super().__init__({}, delay=0.0)
        self.build_s, self.run_s = build_s, run_s
        self.timeline: list[tuple[str, str, float]] = []

    def _mark(self, what: str, job: Job) -> None:
        with self.lock:
            self.timeline.append((what, job.id, time.monotonic()))

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        self._mark("build-start", job)
        time.sleep(self.build_s)
        self._mark("build-end", job)
        base = BaseImage(reference=job.base_image, id="sha256:b")
        return PreparedImage(reference="img", id="sha256:i", base=base)

    def execute(self, job: Job, image: PreparedImage, log: CellLog,
                ctx: RunContext) -> Execution:
        with Slot(ctx, job.id):
            self._mark("run-start", job)
            time.sleep(self.run_s)
            self._mark("run-end", job)
        return Execution(exit_code=0, junit=PASS_XML)

    def at(self, what: str, cell: str) -> float:
        return next(t for w, c, t in self.timeline if w == what and c == cell)


def test_builds_of_later_cells_overlap_runs_of_earlier_ones(tmp_path: Path,
                                                           write: Write) -> None:
    engine = TimedEngine(build_s=0.3, run_s=0.3)
    ctx = RunContext(run_id="r", labels={}, cancel=threading.Event())
    job_list = jobs(write, 'matrix:\n  python: ["3.10", "3.11"]\n')
    Scheduler(engine, job_list, reports=tmp_path / "r", ctx=ctx,
              options=Options(parallel=1, build_parallel=1)).run()
    # one run slot, one build slot: 3.11 builds while 3.10's tests run
    assert engine.at("build-start", "3.11") < engine.at("run-end", "3.10")
    assert engine.at("run-start", "3.10") >= engine.at("build-end", "3.10")
    assert engine.at("run-start", "3.11") >= engine.at("run-end", "3.10")


def test_longest_expected_cell_starts_first(tmp_path: Path, write: Write) -> None:
    engine = TimedEngine(build_s=0.0, run_s=0.05)
    ctx = RunContext(run_id="r", labels={}, cancel=threading.Event())
    job_list = jobs(write, 'matrix:\n  python: ["3.10", "3.11", "3.12"]\n')
    Scheduler(engine, job_list, reports=tmp_path / "r", ctx=ctx,
              options=Options(parallel=1, expected={"3.12": 30.0, "3.11": 10.0})).run()
    starts = [c for w, c, _ in sorted(engine.timeline, key=lambda e: e[2]) if w == "run-start"]
    assert starts == ["3.12", "3.11", "3.10"]


def test_a_freed_slot_goes_to_the_best_waiting_cell() -> None:
    slots = Slots(1)
    assert slots.acquire("running", timeout=0.1)
    slots.enqueue("short", (-1.0, 0))
    got: list[str] = []

    def take(cell: str, priority: tuple[float, int]) -> None:
        slots.enqueue(cell, priority)
        if slots.acquire(cell, timeout=5):
            got.append(cell)
            slots.release()

    waiters = [threading.Thread(target=take, args=("short", (-1.0, 0))),
               threading.Thread(target=take, args=("long", (-9.0, 1)))]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)  # both wait; "short" was queued first
    slots.release()
    for waiter in waiters:
        waiter.join(5)
    assert got == ["long", "short"]


def test_the_scheduler_refuses_jobs_that_are_not_planned(tmp_path: Path, write: Write) -> None:
    # run.execute settles skipped cells; handed one, the scheduler must not run it
    planned = jobs(write, MATRIX)
    skipped = replace(planned[0], state=SKIPPED, reason="not published")
    ctx = RunContext(run_id="r", labels={}, cancel=threading.Event())
    with pytest.raises(ValueError, match="planned jobs only"):
        Scheduler(FakeEngine({}), [skipped, *planned[1:]], reports=tmp_path / "r", ctx=ctx,
                  options=Options())
