"""Runs a plan's jobs on an engine: a bounded pool, shared builds, results in plan order.

At most ``parallel`` cells run at once. Cells whose build specs are equal
share one build (the first cell builds, the others wait for it). Every job
ends as a :class:`CellResult`: infrastructure faults become ``error`` with the
reason; a lost engine stops the run (the rest end as ``error``); cancellation
stops scheduling and kills what runs.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .celllog import DEFAULT_MAX_BYTES, CellLog, now_iso
from .engine import Engine, Execution, PreparedImage, RunContext, Slots
from .errors import CellError, EngineUnavailable
from .jobs import PLANNED, Job
from .junit_in import InvalidResults, parse_junit
from .results import Attempt, CellResult, Status, TestCase, TestCounts

log = logging.getLogger(__name__)

EventSink = Callable[[str, str, str], None]  # (cell id, state, detail)


@dataclass(frozen=True, kw_only=True)
class Options:
    parallel: int = 2
    log_max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 2  # further attempts after an infrastructure error
    backoff: float = 2.0  # seconds before the first retry; doubles, with jitter
    build_parallel: int = 0  # builds at once (0: as many as parallel)
    # Before the first cell starts, wait up to this long for the images to be ready:
    # cached builds finish within it, and longest-first can then choose among all cells.
    dispatch_grace: float = 1.0
    expected: dict[str, float] = field(default_factory=dict)  # cell id -> seconds, last run


def job_result(job: Job, status: Status, reason: str) -> CellResult:
    return CellResult(
        id=job.id, python=job.cell.python, variant=job.cell.variant,
        axes=dict(job.cell.axes), image=job.base_image, platform=job.platform,
        status=status, reason=reason, gating=job.gating,
        log=f"logs/{job.id}.log" if job.state == PLANNED else "")


@dataclass(frozen=True)
class Verdict:
    """How a finished container is judged."""

    status: Status
    reason: str = ""
    stage: str = ""  # for errors: run or results
    cases: tuple[TestCase, ...] = ()


def classify(job: Job, execution: Execution) -> Verdict:
    """The status of a finished container, from its exit code and its JUnit."""
    code = execution.exit_code
    if execution.cancelled:
        return Verdict(Status.CANCELLED, "cancelled while running; container killed", "run")
    if execution.timed_out:
        return Verdict(Status.TIMEOUT, f"exceeded the {job.timeout:g} s timeout; container "
                       "killed", "run")
    if execution.setup_failed:
        return Verdict(Status.ERROR, "the setup command failed (see the log)", "run")
    if execution.oom_killed:
        return Verdict(Status.ERROR, "killed by the kernel: out of memory (OOMKilled)", "run")
    if code == 137:
        return Verdict(Status.ERROR, "killed by SIGKILL (exit 137; out of memory?)", "run")
    cases: tuple[TestCase, ...] = ()
    if execution.junit is not None:
        try:
            cases = tuple(parse_junit(execution.junit))
        except InvalidResults as exc:
            return Verdict(Status.ERROR, f"results: {exc}", "results")
    counts = TestCounts.of(cases)
    bad = counts.failed + counts.errors
    if code is None:
        return Verdict(Status.ERROR, "the container's exit code is unknown", "run", cases)
    if job.junit_path and execution.junit is None:
        why = execution.junit_error or "no JUnit file"
        if code == 0:
            return Verdict(Status.ERROR, f"results missing: {why}", "results")
        return Verdict(Status.FAILED, f"exit code {code}; {why}")
    wrong = _wrong_interpreter(job, execution)
    if wrong:
        return Verdict(Status.ERROR, wrong, "results", cases)
    if code == 0 and bad == 0:
        return Verdict(Status.PASSED, "", "", cases)
    if code == 0:
        return Verdict(Status.FAILED, f"{bad} test(s) failed although the command exited 0",
                       "", cases)
    if code == 5 and counts.total == 0:
        return Verdict(Status.FAILED, "no tests were collected (pytest exit 5)", "", cases)
    detail = f"; {counts.failed} failed, {counts.errors} errors" if cases else ""
    return Verdict(Status.FAILED, f"exit code {code}{detail}", "", cases)


def _wrong_interpreter(job: Job, execution: Execution) -> str:
    """Why the cell cannot count: it ran another interpreter than its tag promises (a
    custom Dockerfile whose FROM ignores PYTHON_IMAGE, a mislabelled image); "" if fine."""
    if job.interpreter is None:
        return ""
    verdict = job.interpreter.judge(execution.interpreter.version)
    if verdict.ok:
        if verdict.message:
            log.warning("cell %s: %s", job.id, verdict.message)
        return ""
    if job.build is not None and job.build.dockerfile:
        hint = (f": does {job.build.dockerfile}'s FROM use PYTHON_IMAGE "
                "(ARG PYTHON_IMAGE, FROM ${PYTHON_IMAGE})?")
    else:
        hint = f": the image {job.base_image} does not hold the interpreter its tag names"
    return verdict.message + hint


class Scheduler:
    """Executes one engine's planned jobs (skipped cells are settled by run.execute,
    which also owns the cells no engine can take)."""

    def __init__(self, engine: Engine, jobs: list[Job], *, reports: Path, ctx: RunContext,
                 options: Options, on_event: EventSink | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        if any(job.state != PLANNED for job in jobs):
            raise ValueError("the scheduler runs planned jobs only")
        self.engine = engine
        self.jobs = jobs
        self.reports = reports
        self.ctx = ctx
        self.options = options
        self.on_event = on_event or (lambda _cell, _state, _detail: None)
        self.secrets = secrets
        self._builds: dict[str, tuple[str, Future[PreparedImage]]] = {}
        self._builds_lock = threading.Lock()
        self._logs: dict[str, CellLog] = {}
        self._logs_lock = threading.Lock()
        self._index = {job.id: i for i, job in enumerate(jobs)}
        self.engine_lost: EngineUnavailable | None = None

    def _priority(self, job: Job) -> tuple[float, int]:
        """Longest expected first (durations of the previous run), then plan order."""
        return (-self.options.expected.get(job.id, 0.0), self._index[job.id])

    def _log_for(self, job: Job) -> CellLog:
        with self._logs_lock:
            if job.id not in self._logs:
                self._logs[job.id] = self._open_log(f"{job.id}.log")
            return self._logs[job.id]

    def _open_log(self, name: str) -> CellLog:
        """A log file in the reports' logs folder (a cell's, or the project image's)."""
        return CellLog(self.reports / "logs" / name, max_bytes=self.options.log_max_bytes,
                       secrets=self.secrets, label=f"logs/{name}")

    def run(self) -> list[CellResult]:
        """Every job's result, in plan order.

        A pipeline: each distinct image is built once, in a build pool; a cell
        enters one of the ``parallel`` run slots as soon as its image is ready
        (builds of later cells overlap with the tests of earlier ones), longest
        expected first.
        """
        results: dict[str, CellResult] = {}
        runnable = sorted(self.jobs, key=self._priority)
        for job in runnable:
            self.on_event(job.id, "queued", "")
        waiting: dict[str, list[Job]] = {}  # build key -> cells waiting for that image
        ready: list[Job] = []
        for job in runnable:
            if job.build is None:
                ready.append(job)
            else:
                waiting.setdefault(job.build.key, []).append(job)
        parallel = max(1, self.options.parallel)
        slots = Slots(parallel)
        self.ctx = replace(self.ctx, slots=slots, open_log=self._open_log)
        builders = ThreadPoolExecutor(max_workers=max(1, self.options.build_parallel or parallel),
                                      thread_name_prefix="build")
        # Twice the slots: a finished cell collects its results and removes its container
        # in its thread while the next cell's container already runs in a slot.
        runners = ThreadPoolExecutor(max_workers=2 * parallel, thread_name_prefix="cell")
        builds = {builders.submit(self._build, jobs[0]): key for key, jobs in waiting.items()}
        running: dict[Future[CellResult], Job] = {}
        grace_until = time.monotonic() + self.options.dispatch_grace
        try:
            while builds or ready or running:
                if self.ctx.cancel.is_set() or self.ctx.halt.is_set():
                    break
                ready.sort(key=self._priority)
                holding = builds and time.monotonic() < grace_until
                while ready and not holding and len(running) < 2 * parallel:
                    job = ready.pop(0)
                    slots.enqueue(job.id, self._priority(job))  # best priority first
                    running[runners.submit(self._run_job, job)] = job
                pending: list[Future[Any]] = [*builds, *running]
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    if future in builds:
                        ready.extend(waiting.pop(builds.pop(future)))
                        continue
                    job = running.pop(future)
                    with suppress(_NotStarted):  # filled in below: cancelled or not run
                        results[job.id] = future.result()
            for future, job in list(running.items()):
                with suppress(_NotStarted):
                    results[job.id] = future.result()
        finally:
            builders.shutdown(wait=True, cancel_futures=True)
            runners.shutdown(wait=True, cancel_futures=True)
            with self._logs_lock:
                for cell_log in self._logs.values():
                    cell_log.close()
        for job in runnable:
            if job.id not in results:
                results[job.id] = self._unstarted(job)
        return [results[j.id] for j in self.jobs]

    def _unstarted(self, job: Job) -> CellResult:
        """The result of a cell that never started: the engine was lost, or cancelled."""
        if self.ctx.halt.is_set():
            result = replace(job_result(job, Status.ERROR, f"not run: {self.ctx.halt.reason}"),
                             stage="engine")
        else:
            result = job_result(job, Status.CANCELLED, "cancelled before it started")
        self.on_event(job.id, str(result.status), result.reason)
        return result

    def _build(self, job: Job) -> None:
        """The build stage: build ``job``'s image into its cell log; failures are kept
        in the shared future and reported when the cells run."""
        if self.ctx.cancel.is_set() or self.ctx.halt.is_set():
            return
        cell_log = self._log_for(job)
        cell_log.section("build")
        self.on_event(job.id, "building", "")
        with suppress(Exception):  # recorded in the build's future; the cells report it
            self._prepare(job, cell_log)

    def _prepare(self, job: Job, cell_log: CellLog, attempt: int = 1) -> PreparedImage:
        """The cell's image: built once per build key and shared. A build that failed
        transiently counts as the first attempt; a later attempt builds again."""
        spec = job.build
        if spec is None:
            return self.engine.prepare(job, None, cell_log, self.ctx)
        with self._builds_lock:
            entry = self._builds.get(spec.key)
            if entry is not None and attempt > 1 and entry[1].done() \
                    and entry[1].exception() is not None \
                    and getattr(entry[1].exception(), "retryable", False):
                entry = None
            owner = entry is None
            if entry is None:
                entry = (job.id, Future())
                self._builds[spec.key] = entry
        builder, future = entry
        if owner:
            try:
                image = self.engine.prepare(job, spec, cell_log, self.ctx)
            except BaseException as exc:
                future.set_exception(exc)
                raise
            future.set_result(image)
            return image
        if builder != job.id:
            cell_log.note(f"image {spec.tag} is shared with cell {builder}: its log has "
                          "the build")
        try:
            return future.result()
        except CellError as exc:
            if builder == job.id:
                raise
            raise CellError(f"{exc.message} (build shared with cell {builder})",
                            stage=exc.stage, retryable=exc.retryable) from exc

    def _run_job(self, job: Job) -> CellResult:
        """All attempts at one cell; only infrastructure errors are tried again."""
        if self.ctx.cancel.is_set() or self.ctx.halt.is_set():
            raise _NotStarted
        cell_log = self._log_for(job)
        attempts: list[Attempt] = []
        clock = time.monotonic()
        try:
            while True:
                number = len(attempts) + 1
                result, retryable = self._attempt(job, cell_log, number)
                attempts.append(Attempt(number=number, status=result.status,
                                        reason=result.reason, stage=result.stage,
                                        duration_s=result.duration_s,
                                        started_at=result.started_at))
                if not retryable or number > self.options.retries or self.ctx.cancel.is_set():
                    break
                delay = backoff(number, self.options.backoff)
                cell_log.note(f"attempt {number} failed ({result.stage}: {result.reason}); "
                              f"trying again in {delay:.1f} s")
                self.on_event(job.id, "retrying", f"attempt {number + 1} in {delay:.1f} s")
                if self.ctx.cancel.wait(delay):
                    break
        finally:
            cell_log.close()
        redact = cell_log.redactor.text
        result = replace(
            result, attempts=tuple(replace(a, reason=redact(a.reason)) for a in attempts),
            failing_tests=tuple(redact(t) for t in result.failing_tests),
            flaky_tests=tuple(redact(t) for t in result.flaky_tests),
            reason=redact(result.reason), cases=tuple(_redacted(c, redact) for c in result.cases),
            duration_s=round(time.monotonic() - clock, 3),
            output_tail=cell_log.output_excerpt())
        self.on_event(job.id, str(result.status), result.reason)
        return result

    def _attempt(self, job: Job, cell_log: CellLog, number: int) -> tuple[CellResult, bool]:
        """One try; returns its result and whether an infrastructure fault may pass."""
        started_at, clock = now_iso(), time.monotonic()
        result = job_result(job, Status.ERROR, "")
        retryable = False
        try:
            cell_log.note(f"cell {job.id}: python {job.cell.python} variant "
                          f"{job.cell.variant or '(default)'} on engine {self.engine.name}"
                          + (f", attempt {number}" if number > 1 else ""))
            if job.build is None or number > 1:
                cell_log.section("build" if job.build else "image")
            image = self._prepare(job, cell_log, number)
            self.on_event(job.id, "running", "")
            execution = self.engine.execute(job, image, cell_log, self.ctx)
            verdict = classify(job, execution)
            cell_log.section(f"result: {verdict.status}"
                             + (f" ({verdict.reason})" if verdict.reason else ""))
            result = replace(
                result, status=verdict.status, reason=verdict.reason, stage=verdict.stage,
                exit_code=execution.exit_code,
                image_digest=image.base.digest, built_image=image.reference,
                base_size=image.base.size, image_size=image.size,
                base_labels=dict(image.base.labels),
                engine=self.engine.name, node=execution.node,
                build_s=round(image.build_s, 3), run_s=round(execution.run_s, 3),
                tests=TestCounts.of(verdict.cases), cases=verdict.cases,
                failing_tests=tuple(c.key for c in verdict.cases
                                    if c.outcome in ("failed", "error")),
                flaky_tests=tuple(c.key for c in verdict.cases if c.flaky),
                project_digest=image.project_digest,
                interpreter=execution.interpreter,
                packages=dict(execution.packages), install=execution.install,
                started_at=execution.started_at, finished_at=execution.finished_at)
        except EngineUnavailable as exc:
            # Queued cells will not start (see _run_job and Slot); running ones fail on
            # their own.
            self.engine_lost = self.engine_lost or exc
            self.ctx.halt.set(exc.message)
            result = replace(result, status=Status.ERROR, reason=exc.message, stage="engine")
            cell_log.note(f"error: {exc.message}")
        except CellError as exc:
            status = Status.CANCELLED if self.ctx.cancel.is_set() else Status.ERROR
            result = replace(result, status=status, reason=exc.message, stage=exc.stage)
            retryable = exc.retryable and status is Status.ERROR
            cell_log.note(f"error: {exc.message}")
        except Exception as exc:  # one cell's bug must not lose the other cells' results
            log.exception("cell %s: internal error", job.id)
            result = replace(result, status=Status.ERROR, stage="internal",
                             reason=f"internal error: {type(exc).__name__}: {exc}")
            cell_log.note(f"internal error (see tagmatrix.log): {exc}")
        result = replace(result, duration_s=round(time.monotonic() - clock, 3),
                         started_at=result.started_at or started_at,
                         finished_at=result.finished_at or now_iso())
        return result, retryable


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff with "equal jitter": half the step, plus up to half at random,
    so retries of many cells hit a rate-limited registry at different moments."""
    ceiling = min(60.0, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def _redacted(case: TestCase, redact: Callable[[str], str]) -> TestCase:
    """Secrets the tests printed or asserted on never reach a report."""
    return replace(case, name=redact(case.name), message=redact(case.message),
                   text=redact(case.text), system_out=redact(case.system_out),
                   system_err=redact(case.system_err))


class _NotStarted(Exception):
    """A queued job that found the run cancelled when its turn came."""
