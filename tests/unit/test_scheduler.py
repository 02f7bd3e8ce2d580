"""The scheduler with a scripted fake engine (allowed for scheduler unit tests only).

The fake engine has no slot code at all: the scheduler alone must bound how many
cells run. Threads are synchronised with events and polling with deadlines, never
with sleeps standing in for "long enough".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.celllog import CellLog
from orchestrator.config import load_config
from orchestrator.containerrecords import Interpreter
from orchestrator.engine import (
    BaseImage,
    Ending,
    EngineInfo,
    Execution,
    PreparedImage,
    RunContext,
    Started,
)
from orchestrator.errors import BuildFailed, CellError, EngineUnavailable, Stage
from orchestrator.errors import ImageNotFound as ImageNotFoundError
from orchestrator.events import Progress, State
from orchestrator.plan import SKIPPED, BuildSpec, Job, make_plan
from orchestrator.results import CellResult, Status
from orchestrator.scheduler import Options, Scheduler, backoff
from orchestrator.slots import Slots
from orchestrator.tags import Catalogue

Write = Callable[[str, str], Path]
PASS_XML = (b'<testsuite><testcase classname="t" name="a"/>'
            b'<testcase classname="t" name="b"/></testsuite>')
FAIL_XML = (b'<testsuite><testcase classname="t" name="a"><failure message="no"/></testcase>'
            b'</testsuite>')
DEADLINE = 10.0


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (AssertionError after DEADLINE seconds)."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


class FakeEngine:
    """Scripted outcomes per cell id: an Execution, or an exception raised by prepare
    (BuildFailed) or by wait (anything else). ``gated``: every wait blocks until the
    test lets it end (``finish``), or until the run is cancelled. Counts what runs
    between go and the end of wait; it holds no slot, ever."""

    name = "fake"

    def __init__(self, script: dict[str, object] | None = None, *, gated: bool = False,
                 build_s: float = 0.0) -> None:
        self.script = script or {}
        self.gated = gated
        self.build_s = build_s  # how long each build takes (a duration, not a wait for events)
        self.running = 0
        self.max_running = 0
        self.builds: list[str] = []
        self.removed: list[str] = []
        self.events: list[tuple[str, str]] = []  # (phase, cell)
        self.lock = threading.Lock()
        self._finish = threading.Semaphore(0)

    def info(self) -> EngineInfo:
        return EngineInfo(name="fake", os="linux", arch="x86_64", version="0")

    def _note(self, phase: str, job: Job) -> None:
        with self.lock:
            self.events.append((phase, job.id))

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        outcome = self.script.get(job.id)
        threading.Event().wait(self.build_s if spec is not None else 0.0)
        if isinstance(outcome, BuildFailed):
            raise outcome
        with self.lock:
            self.builds.append(job.id)
        self._note("build", job)
        base = BaseImage(reference=job.base_image, id="sha256:base", digest="sha256:d")
        return PreparedImage(reference="img", id="sha256:img", base=base)

    def start(self, job: Job, image: PreparedImage, log: CellLog,
              ctx: RunContext) -> Started:
        self._note("start", job)
        return Started(id=job.id, job=job, image=image)

    def go(self, started: Started) -> None:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self._note("go", started.job)

    def finish(self) -> None:
        """Let one gated wait end."""
        self._finish.release()

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        try:
            if self.gated:
                while not self._finish.acquire(timeout=0.01):
                    if ctx.cancel.is_set():
                        return Ending(exit_code=137, cancelled=True)
            outcome = self.script.get(started.id)
            if isinstance(outcome, Exception) and not isinstance(outcome, BuildFailed):
                raise outcome
            code = outcome.exit_code if isinstance(outcome, Execution) else 0
            return Ending(exit_code=code, run_s=0.01)
        finally:
            with self.lock:
                self.running -= 1
            self._note("end", started.job)

    def collect(self, started: Started, ending: Ending, log: CellLog) -> Execution:
        said = self.script.get(f"{started.id}:output")
        if isinstance(said, bytes):  # what the container printed
            log.output(said)
        outcome = self.script.get(started.id, Execution(exit_code=0, junit=PASS_XML))
        assert isinstance(outcome, Execution)
        if not outcome.interpreter.version:
            # a real cell reports the interpreter it ran (python 3.12 -> 3.12.0)
            outcome = replace(outcome,
                              interpreter=Interpreter(version=f"{started.job.cell.python}.0"))
        return outcome

    def remove(self, started: Started) -> None:
        with self.lock:
            self.removed.append(started.id)

    def close(self) -> None:
        pass


def jobs(write: Write, matrix: str) -> list[Job]:
    config = load_config(write("matrix.yaml", matrix))
    return list(make_plan(config, Catalogue.builtin()).jobs)


def scheduler(tmp_path: Path, engine: FakeEngine, job_list: list[Job], *,
              cancel: threading.Event | None = None,
              events: list[tuple[str, State]] | None = None, **options: Any) -> Scheduler:
    ctx = RunContext(run_id="r", labels={}, cancel=cancel or threading.Event())
    sink = (lambda cell, state, _detail: events.append((cell, state))) \
        if events is not None else None
    return Scheduler(engine, job_list, reports=tmp_path / "reports", ctx=ctx,
                     options=Options(**{"parallel": 2, "backoff": 0.01, **options}),
                     on_event=sink)


def run(tmp_path: Path, engine: FakeEngine, job_list: list[Job],
        **options: Any) -> tuple[Scheduler, dict[str, CellResult]]:
    found = scheduler(tmp_path, engine, job_list, **options)
    return found, {r.id: r for r in found.run()}


class Background:
    """The scheduler's run in a thread, its result (or exception) kept."""

    def __init__(self, found: Scheduler) -> None:
        self.results: list[CellResult] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(found,))
        self.thread.start()

    def _run(self, found: Scheduler) -> None:
        try:
            self.results = found.run()
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def join(self) -> dict[str, CellResult]:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the scheduler did not finish"
        if self.error is not None:
            raise self.error
        return {r.id: r for r in self.results}


MATRIX = 'matrix:\n  python: ["3.10", "3.11", "3.12", "3.13"]\n  variant: [slim]\n'
SIX = 'matrix:\n  python: ["3.12"]\n  n: ["1", "2", "3", "4", "5", "6"]\n'


def test_results_in_plan_order(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({"3.11-slim": Execution(exit_code=1, junit=FAIL_XML)})
    _, results = run(tmp_path, engine, jobs(write, MATRIX))
    assert list(results) == ["3.10-slim", "3.11-slim", "3.12-slim", "3.13-slim"]
    assert [str(r.status) for r in results.values()] == ["passed", "failed", "passed",
                                                         "passed"]
    assert sorted(engine.removed) == sorted(results)  # every container removed


def test_an_engine_without_slot_code_never_exceeds_parallel(tmp_path: Path,
                                                           write: Write) -> None:
    engine = FakeEngine(gated=True)
    found = scheduler(tmp_path, engine, jobs(write, SIX), parallel=2)
    background = Background(found)
    for remaining in range(6, 0, -1):
        until(lambda r=remaining: engine.running == min(2, r),  # type: ignore[misc]
              f"{min(2, remaining)} cells running")
        # give any unbounded scheduler its chance to start a third: it must not
        assert found.slots.held == min(2, remaining)
        assert engine.running <= 2
        engine.finish()
    results = background.join()
    assert engine.max_running == 2
    assert all(r.status is Status.PASSED for r in results.values())


def test_a_cell_is_running_only_while_it_holds_a_slot(tmp_path: Path, write: Write) -> None:
    events: list[tuple[str, State]] = []
    engine = FakeEngine(gated=True)
    found = scheduler(tmp_path, engine, jobs(write, MATRIX), parallel=1, events=events)
    background = Background(found)
    until(lambda: engine.running == 1, "one cell running")
    running = [cell for cell, state in events if state is Progress.RUNNING]
    assert len(running) == 1  # the others wait, and say so
    assert {cell for cell, state in events if state is Progress.WAITING} >= {running[0]}
    for _ in range(4):
        engine.finish()
    background.join()


def test_shared_build_is_built_once(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine()
    job_list = jobs(write, 'matrix:\n  python: ["3.12"]\n  mode: [a, b, c]\n')
    _, results = run(tmp_path, engine, job_list, parallel=3)
    assert len(engine.builds) == 1
    assert all(r.status is Status.PASSED for r in results.values())
    logs = [(tmp_path / f"reports/logs/3.12-{m}.log").read_text() for m in "abc"]
    assert sum("shared with cell" in text for text in logs) == 2


def test_build_failure_is_an_error_for_every_sharer(tmp_path: Path, write: Write) -> None:
    failure = BuildFailed("build failed: boom", stage=Stage.BUILD)
    job_list = jobs(write, 'matrix:\n  python: ["3.12"]\n  mode: [a, b]\n')
    engine = FakeEngine({"3.12-a": failure, "3.12-b": failure})
    _, results = run(tmp_path, engine, job_list)
    for result in results.values():
        assert result.status is Status.ERROR
        assert result.stage is Stage.BUILD


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_failed_build_frees_its_place_in_the_queue(tmp_path: Path, write: Write,
                                                     parallel: int) -> None:
    """The first cell in line (best priority) fails to build: it never asks for a slot,
    and the cells behind it must not wait for it for ever."""
    failure = BuildFailed("build failed: No matching distribution found for pytest<0",
                          stage=Stage.BUILD)
    engine = FakeEngine({"3.10-slim": failure})
    found = scheduler(tmp_path, engine, jobs(write, MATRIX), parallel=parallel)
    results = Background(found).join()
    assert results["3.10-slim"].status is Status.ERROR
    assert [results[c].status for c in ("3.11-slim", "3.12-slim", "3.13-slim")] == \
        [Status.PASSED] * 3
    assert found.slots.queued() == 0


def test_a_cells_own_build_counts_in_its_time_even_built_ahead_or_failed(
        tmp_path: Path, write: Write) -> None:
    failure = BuildFailed("build failed: boom", stage=Stage.BUILD)
    engine = FakeEngine({"3.10-slim": failure}, build_s=0.05)
    _, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=1)
    for cell in results.values():  # every image was built ahead, in the build pool
        assert cell.duration_s >= 0.05, (cell.id, cell.duration_s)
    assert results["3.10-slim"].build_s >= 0.05  # the failed build's time is reported
    log = (tmp_path / "reports" / "logs" / "3.10-slim.log").read_text()
    assert "result: error (build failed: boom)" in log  # the log ends with its verdict


def test_a_failure_without_per_test_results_quotes_the_line_that_says_why(
        tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({
        "3.12": Execution(exit_code=1, junit=None, junit_error="no JUnit file"),
        "3.12:output": b"collecting\nE   ImportError: cannot import name 'x'\nbye\n\n"})
    _, results = run(tmp_path, engine, jobs(write, 'matrix: {python: ["3.12"]}\n'))
    assert results["3.12"].status is Status.FAILED
    assert results["3.12"].reason == ("exit code 1; no JUnit file; it said: "
                                      "E   ImportError: cannot import name 'x'")


def test_a_test_command_whose_module_is_not_installed_is_an_error(
        tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({
        "3.12": Execution(exit_code=1, junit=None, junit_error="no JUnit file"),
        "3.12:output": b"collecting\n/usr/local/bin/python: No module named pytest\n\n"})
    _, results = run(tmp_path, engine, jobs(write, 'matrix: {python: ["3.12"]}\n'))
    assert results["3.12"].status is Status.ERROR
    assert results["3.12"].reason.startswith(
        "the test command did not start: /usr/local/bin/python: No module named pytest")


def test_engine_loss_ends_remaining_cells_as_error(tmp_path: Path, write: Write) -> None:
    lost = EngineUnavailable("lost the Docker engine")
    engine = FakeEngine({"3.10-slim": lost})
    found, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=1)
    assert found.engine_lost is lost
    assert [r.status for r in results.values()] == [Status.ERROR] * 4
    assert results["3.13-slim"].reason == "not run: lost the Docker engine"
    assert results["3.13-slim"].stage is Stage.ENGINE
    assert engine.events.count(("go", "3.11-slim")) == 0  # never started after the loss


def test_cancellation_marks_running_and_queued_cells(tmp_path: Path, write: Write) -> None:
    cancel = threading.Event()
    engine = FakeEngine(gated=True)
    found = scheduler(tmp_path, engine, jobs(write, MATRIX), parallel=1, cancel=cancel)
    background = Background(found)
    until(lambda: engine.running == 1, "one cell running")
    running = next(cell for phase, cell in engine.events if phase == "go")
    cancel.set()
    results = background.join()
    assert results[running].status is Status.CANCELLED
    assert "while running" in results[running].reason
    queued = [r for cell, r in results.items() if cell != running]
    assert len(queued) == 3
    assert all(r.status is Status.CANCELLED for r in queued)
    assert all(r.reason == "cancelled before it started" for r in queued)


def test_interpreter_is_reported(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine({"3.12": Execution(exit_code=0, junit=PASS_XML, interpreter=Interpreter(
        version="3.12.1", executable="/usr/local/bin/python"))})
    _, results = run(tmp_path, engine, jobs(write, 'matrix: {python: ["3.12"]}\n'))
    assert results["3.12"].interpreter.version == "3.12.1"


def test_a_bug_in_a_cells_thread_reaches_the_caller(tmp_path: Path, write: Write) -> None:
    class Broken(FakeEngine):
        def start(self, job: Job, image: PreparedImage, log: CellLog,
                  ctx: RunContext) -> Started:
            raise KeyError("a bug")

    _, results = run(tmp_path, Broken(), jobs(write, 'matrix: {python: ["3.12"]}\n'))
    assert results["3.12"].status is Status.ERROR
    assert results["3.12"].stage is Stage.INTERNAL
    assert "KeyError" in results["3.12"].reason


class FlakyEngine(FakeEngine):
    """Fails prepare with a scripted sequence of errors before succeeding."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures
        self.prepares = 0

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        self.prepares += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().prepare(job, spec, log, ctx)


ONE = 'matrix: {python: ["3.12"]}\n'


def test_rate_limit_is_retried_and_every_attempt_kept(tmp_path: Path, write: Write) -> None:
    limited = CellError("pull: registry rate limit: toomanyrequests", stage=Stage.PULL,
                        retryable=True)
    engine = FlakyEngine([limited])
    result = run(tmp_path, engine, jobs(write, ONE), parallel=1)[1]["3.12"]
    assert result.status is Status.PASSED
    assert [(a.number, a.status, a.stage) for a in result.attempts] == [
        (1, Status.ERROR, Stage.PULL), (2, Status.PASSED, Stage.NONE)]
    assert "toomanyrequests" in result.attempts[0].reason
    log = (tmp_path / "reports/logs/3.12.log").read_text()
    assert "attempt 1 failed (pull: pull: registry rate limit" in log


def test_retries_stop_at_the_configured_count(tmp_path: Path, write: Write) -> None:
    limited = CellError("429", stage=Stage.PULL, retryable=True)
    engine = FlakyEngine([limited, limited, limited, limited])
    result = run(tmp_path, engine, jobs(write, ONE), retries=2)[1]["3.12"]
    assert result.status is Status.ERROR
    assert len(result.attempts) == 3
    assert engine.prepares == 3


def test_permanent_errors_and_test_failures_are_never_retried(tmp_path: Path,
                                                              write: Write) -> None:
    engine = FlakyEngine([ImageNotFoundError("tag not found", stage=Stage.PULL)])
    assert len(run(tmp_path, engine, jobs(write, ONE))[1]["3.12"].attempts) == 1
    failing = FakeEngine({"3.12": Execution(exit_code=1, junit=FAIL_XML)})
    result = run(tmp_path, failing, jobs(write, ONE))[1]["3.12"]
    assert result.status is Status.FAILED
    assert len(result.attempts) == 1


def test_a_shared_build_that_failed_transiently_is_built_again(tmp_path: Path,
                                                               write: Write) -> None:
    broken = BuildFailed("build failed: connection reset by peer", stage=Stage.BUILD,
                         retryable=True)
    engine = FlakyEngine([broken])
    _, results = run(tmp_path, engine, jobs(write, 'matrix:\n  python: ["3.12"]\n'
                                                   "  mode: [a, b]\n"), parallel=1)
    assert [r.status for r in results.values()] == [Status.PASSED, Status.PASSED]
    assert engine.prepares == 2  # the failed build, then one shared rebuild


def test_backoff_grows_with_jitter() -> None:
    first = [backoff(1, 2.0) for _ in range(200)]
    third = [backoff(3, 2.0) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in first)
    assert all(4.0 <= d <= 8.0 for d in third)
    assert len({round(d, 6) for d in first}) > 100  # jittered, not a constant
    assert backoff(20, 2.0) <= 60.0


class OrderedEngine(FakeEngine):
    """3.10's tests end only once 3.11's build has begun (or after the deadline)."""

    def __init__(self) -> None:
        super().__init__()
        self.building_311 = threading.Event()
        self.overlapped = False

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        if job.id == "3.11":
            self.building_311.set()
        return super().prepare(job, spec, log, ctx)

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        if started.id == "3.10":
            self.overlapped = self.building_311.wait(DEADLINE)
        return super().wait(started, timeout, ctx)


def test_builds_of_later_cells_overlap_runs_of_earlier_ones(tmp_path: Path,
                                                           write: Write) -> None:
    engine = OrderedEngine()
    job_list = jobs(write, 'matrix:\n  python: ["3.10", "3.11"]\n')
    # one run slot, one build slot; no dispatch grace: 3.10 runs as soon as it is built
    run(tmp_path, engine, job_list, parallel=1, build_parallel=1, dispatch_grace=0.0,
        expected={"3.10": 2.0})
    assert engine.overlapped  # 3.11 was building while 3.10's tests ran
    order = [e for e in engine.events if e[0] in ("build", "go")]
    assert order.index(("go", "3.10")) < order.index(("go", "3.11"))


def test_longest_expected_cell_starts_first(tmp_path: Path, write: Write) -> None:
    engine = FakeEngine()
    job_list = jobs(write, 'matrix:\n  python: ["3.10", "3.11", "3.12"]\n')
    run(tmp_path, engine, job_list, parallel=1, expected={"3.12": 30.0, "3.11": 10.0})
    assert [cell for phase, cell in engine.events if phase == "go"] == ["3.12", "3.11", "3.10"]


def test_a_freed_slot_goes_to_the_best_waiting_cell() -> None:
    slots = Slots(1)
    assert slots.acquire("running", timeout=0.1)
    got: list[str] = []

    def take(cell: str, priority: tuple[float, int]) -> None:
        slots.enqueue(cell, priority)
        if slots.acquire(cell, timeout=DEADLINE):
            got.append(cell)
            slots.release()

    waiters = [threading.Thread(target=take, args=("short", (-1.0, 0))),
               threading.Thread(target=take, args=("long", (-9.0, 1)))]
    waiters[0].start()
    until(lambda: slots.queued() == 1, "short waits")
    waiters[1].start()
    until(lambda: slots.queued() == 2, "both wait")  # "short" was queued first
    slots.release()
    for waiter in waiters:
        waiter.join(DEADLINE)
    assert got == ["long", "short"]


def test_the_scheduler_refuses_jobs_that_are_not_planned(tmp_path: Path, write: Write) -> None:
    # run.execute settles skipped cells; handed one, the scheduler must not run it
    planned = jobs(write, MATRIX)
    skipped = replace(planned[0], state=SKIPPED, reason="not published")
    with pytest.raises(ValueError, match="planned jobs only"):
        scheduler(tmp_path, FakeEngine(), [skipped, *planned[1:]])


def test_the_runs_per_test_results_are_capped_across_cells(tmp_path: Path,
                                                          write: Write) -> None:
    """Each cell is capped, and so is their sum: the cell past the budget is an error
    whose results were dropped, the others keep theirs."""
    from orchestrator.slots import CaseBudget

    engine = FakeEngine()  # every cell reports PASS_XML: 2 cases
    _, results = run(tmp_path, engine, jobs(write, MATRIX), parallel=1,
                     cases=CaseBudget(total=7))
    kept = [r for r in results.values() if r.status is Status.PASSED]
    dropped = [r for r in results.values() if r.status is Status.ERROR]
    assert (len(kept), len(dropped)) == (3, 1)
    assert dropped[0].stage is Stage.RESULTS
    assert "per-test results passed 7" in dropped[0].reason
    assert dropped[0].cases == ()


class GatedBuildEngine(FakeEngine):
    """3.11's build ends only once 3.10 has gone (or after DEADLINE): it says whether
    3.10 was let go while 3.11 was still building."""

    def __init__(self) -> None:
        super().__init__()
        self.went_310 = threading.Event()
        self.went_before_built: bool | None = None

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        if job.id == "3.11":
            self.went_before_built = self.went_310.wait(DEADLINE)
        return super().prepare(job, spec, log, ctx)

    def go(self, started: Started) -> None:
        super().go(started)
        if started.id == "3.10":
            self.went_310.set()


def test_a_cell_is_not_held_back_for_a_build_that_would_go_after_it(
        tmp_path: Path, write: Write) -> None:
    engine = GatedBuildEngine()
    job_list = jobs(write, 'matrix:\n  python: ["3.10", "3.11"]\n')
    # 3.10 is expected to take longest: waiting for 3.11's image could not change the
    # order, so the long grace is not paid
    run(tmp_path, engine, job_list, parallel=1, build_parallel=2, dispatch_grace=60.0,
        expected={"3.10": 30.0, "3.11": 1.0})
    assert engine.went_before_built is True
    assert [cell for phase, cell in engine.events if phase == "go"] == ["3.10", "3.11"]
