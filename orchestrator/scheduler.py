"""Runs a plan's jobs on an engine: a bounded pool, shared builds, results in plan order.

The scheduler owns every concurrency decision (see engine/__init__.py for the
phases it drives): at most ``parallel`` cells run their tests at once, each
holding one of the run's slots from "go" to its container's exit; cells whose
build specs are equal share one build; an infrastructure fault ends a cell as
``error`` with the reason (retried when transient); a lost engine halts this
engine's queue (the rest end as ``error``); cancellation stops scheduling, and
the run's cleanup kills what runs.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .celllog import DEFAULT_MAX_BYTES, CellLog, now_iso
from .engine import Ending, Engine, Execution, PreparedImage, RunContext, Started
from .errors import CellError, EngineUnavailable, Stage
from .events import EventSink, Progress, ignore
from .jobs import PLANNED, Job
from .results import Attempt, CellResult, Status, TestCounts
from .slots import CaseBudget, Halt, Slots
from .verdict import Verdict, classify, job_result, without_results

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Options:
    parallel: int = 2
    log_max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 2  # further attempts after an infrastructure error
    backoff: float = 2.0  # seconds before the first retry; doubles, with jitter
    build_parallel: int = 0  # builds at once (0: as many as parallel)
    # Before the first cell starts, a cell whose image is still building and which is
    # expected to take longer holds the others back up to this long: cached builds
    # finish within it, and longest-first can then choose among all cells.
    dispatch_grace: float = 1.0
    expected: dict[str, float] = field(default_factory=dict)  # cell id -> seconds, last run
    cases: CaseBudget = field(default_factory=CaseBudget)  # shared by the run's engines


@dataclass(frozen=True)
class _Built:
    image: PreparedImage
    own_s: float  # the build time this cell spent itself (0 when another cell built it)


class Scheduler:
    """Executes one engine's planned jobs (skipped cells are settled by run.execute,
    which also owns the cells no engine can take)."""

    def __init__(self, engine: Engine, jobs: list[Job], *, reports: Path, ctx: RunContext,
                 options: Options, on_event: EventSink | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        if any(job.state is not PLANNED for job in jobs):
            raise ValueError("the scheduler runs planned jobs only")
        self.engine = engine
        self.jobs = jobs
        self.reports = reports
        self.options = options
        self.on_event = on_event or ignore
        self.secrets = secrets
        self.ctx = replace(ctx, open_log=self._open_log)
        self.slots = Slots(max(1, options.parallel))
        self.halt = Halt()  # this engine was lost: its queued cells do not start
        self._builds: dict[str, tuple[str, Future[PreparedImage]]] = {}
        self._build_s: dict[str, float] = {}  # build key -> how long its owner's build took
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

    def _stopped(self) -> CellError | None:
        """Why a waiting cell must not start, if it must not."""
        if self.ctx.cancel.is_set():
            return CellError("cancelled before it started", stage=Stage.RUN)
        if self.halt.is_set():
            return CellError(f"not run: {self.halt.reason}", stage=Stage.ENGINE)
        return None

    def run(self) -> list[CellResult]:
        """Every job's result, in plan order.

        A pipeline: each distinct image is built once, in a build pool; a cell
        enters the queue for a run slot as soon as its image is ready (builds of
        later cells overlap with the tests of earlier ones), longest expected first.
        """
        results: dict[str, CellResult] = {}
        runnable = sorted(self.jobs, key=self._priority)
        for job in runnable:
            self.on_event(job.id, Progress.QUEUED, "")
        waiting: dict[str, list[Job]] = {}  # build key -> cells waiting for that image
        ready: list[Job] = []
        for job in runnable:
            if job.build is None:
                ready.append(job)
            else:
                waiting.setdefault(job.build.key, []).append(job)
        parallel = max(1, self.options.parallel)
        builders = ThreadPoolExecutor(max_workers=max(1, self.options.build_parallel or parallel),
                                      thread_name_prefix="build")
        # Twice the slots: a finished cell collects its results and removes its container
        # in its thread while the next cell's container already runs in a slot.
        runners = ThreadPoolExecutor(max_workers=2 * parallel, thread_name_prefix="cell")
        builds = {builders.submit(self._build, jobs[0]): key for key, jobs in waiting.items()}
        running: dict[Future[CellResult | None], Job] = {}
        grace_until = time.monotonic() + self.options.dispatch_grace
        try:
            while builds or ready or running:
                if self._stopped() is not None:
                    break
                ready.sort(key=self._priority)
                # hold back only the cells a still-building one would go before: the
                # grace is for longest-first, not a wait every run pays
                first_building = min((self._priority(j) for pending in waiting.values()
                                      for j in pending), default=None) \
                    if builds and time.monotonic() < grace_until else None
                while ready and len(running) < 2 * parallel:
                    if first_building is not None and self._priority(ready[0]) > first_building:
                        break
                    job = ready.pop(0)
                    self.slots.enqueue(job.id, self._priority(job))  # best priority first
                    running[runners.submit(self._run_job, job)] = job
                pending: list[Future[Any]] = [*builds, *running]
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    if future in builds:
                        ready.extend(waiting.pop(builds.pop(future)))
                        continue
                    job = running.pop(future)
                    finished = future.result()  # a bug in a cell's thread surfaces here
                    if finished is not None:
                        results[job.id] = finished
            for future, job in list(running.items()):
                finished = future.result()
                if finished is not None:
                    results[job.id] = finished
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
        if self.halt.is_set():
            result = job_result(job, Status.ERROR, f"not run: {self.halt.reason}",
                                Stage.ENGINE)
        else:
            result = job_result(job, Status.CANCELLED, "cancelled before it started")
        self.on_event(job.id, result.status, result.reason)
        return result

    def _build(self, job: Job) -> None:
        """The build stage: build ``job``'s image into its cell log; failures are kept
        in the shared future and reported when the cells run."""
        if self._stopped() is not None:
            return
        cell_log = self._log_for(job)
        cell_log.section("build")
        self.on_event(job.id, Progress.BUILDING, "")
        with suppress(Exception):  # recorded in the build's future; the cells report it
            self._prepare(job, cell_log)

    def _prepare(self, job: Job, cell_log: CellLog, attempt: int = 1) -> _Built:
        """The cell's image: built once per build key and shared. A build that failed
        transiently counts as the first attempt; a later attempt builds again."""
        spec = job.build
        clock = time.monotonic()
        if spec is None:
            image = self.engine.prepare(job, None, cell_log, self.ctx)
            return _Built(image, time.monotonic() - clock)
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
                self._build_s[spec.key] = time.monotonic() - clock
                future.set_exception(exc)
                raise
            self._build_s[spec.key] = time.monotonic() - clock
            future.set_result(image)
            return _Built(image, self._build_s[spec.key])
        if builder != job.id:
            cell_log.note(f"image {spec.tag} is shared with cell {builder}: its log has "
                          "the build")
        try:
            # its own build, run ahead in the build pool, is still its own time
            return _Built(future.result(), self._own_build_s(job) or 0.0)
        except CellError as exc:
            if builder == job.id:
                raise
            raise CellError(f"{exc.message} (build shared with cell {builder})",
                            stage=exc.stage, retryable=exc.retryable) from exc

    def _own_build_s(self, job: Job) -> float | None:
        """How long this cell's own build took (None: no build, or another cell's)."""
        if job.build is None:
            return None
        with self._builds_lock:
            entry = self._builds.get(job.build.key)
            return self._build_s.get(job.build.key) if entry and entry[0] == job.id else None

    def _run_job(self, job: Job) -> CellResult | None:
        """All attempts at one cell; only infrastructure errors are tried again. None:
        the run stopped before the cell's turn (settled by _unstarted). Whatever goes
        wrong in a cell's path ends that cell as ``error``; its slot is never kept."""
        if self._stopped() is not None:
            self.slots.withdraw(job.id)
            return None
        try:
            return self._attempts(job)
        except CellError as exc:  # its log file cannot be written (a planted link)
            self.slots.withdraw(job.id)
            result = job_result(job, Status.ERROR, exc.message, exc.stage)
            self.on_event(job.id, result.status, result.reason)
            return result
        except Exception as exc:  # a bug: this cell, not the run
            log.exception("cell %s: internal error", job.id)
            self.slots.withdraw(job.id)
            result = job_result(job, Status.ERROR, f"internal error: {type(exc).__name__}: "
                                                   f"{exc}", Stage.INTERNAL)
            self.on_event(job.id, result.status, result.reason)
            return result

    def _attempts(self, job: Job) -> CellResult:
        self.on_event(job.id, Progress.WAITING, "")
        cell_log = self._log_for(job)
        attempts: list[Attempt] = []
        try:
            while True:
                number = len(attempts) + 1
                result, retryable = self._attempt(job, cell_log, number)
                # an attempt that failed before asking for its slot (its build) still
                # stands in line: out of it, or the cells behind it wait for ever
                self.slots.withdraw(job.id)
                attempts.append(Attempt(number=number, status=result.status,
                                        reason=result.reason, stage=result.stage,
                                        duration_s=result.duration_s,
                                        started_at=result.started_at))
                if not retryable or number > self.options.retries or self.ctx.cancel.is_set():
                    break
                delay = backoff(number, self.options.backoff)
                cell_log.note(f"attempt {number} failed ({result.stage}: {result.reason}); "
                              f"trying again in {delay:.1f} s")
                self.on_event(job.id, Progress.RETRYING,
                              f"attempt {number + 1} in {delay:.1f} s")
                if self.ctx.cancel.wait(delay):
                    break
                self.slots.enqueue(job.id, self._priority(job))
        finally:
            cell_log.close()
        result = replace(
            result, attempts=tuple(attempts),
            # its own time: its builds and its tests, not the queue
            duration_s=round(sum(a.duration_s for a in attempts), 3),
            output_tail=cell_log.output_excerpt())
        # every text that can reach a report (test names and classnames, messages,
        # the interpreter's and the install's records, reasons) without a secret
        result = cell_log.redactor.value(result)
        self.on_event(job.id, result.status, result.reason)
        return result

    def _execute(self, started: Started, cell_log: CellLog) -> Execution:
        """The tests, in a slot: held from "go" to the container's exit only."""
        job = started.job
        release = self.slots.hold(job.id, self._stopped)
        try:
            self.on_event(job.id, Progress.RUNNING, "")
            self.engine.go(started)
            ending: Ending = self.engine.wait(started, job.timeout, self.ctx)
        except EngineUnavailable as exc:
            self.halt.set(exc.message)  # before the slot passes to a waiting cell
            raise
        finally:
            release()
        if ending.cancelled:  # the run's cleanup removes what is left: nothing to collect
            return Execution.ended(ending)
        return self.engine.collect(started, ending, cell_log)

    def _judge(self, job: Job, execution: Execution, cell_log: CellLog) -> Verdict:
        verdict = classify(job, execution)
        if verdict.cases and not self.options.cases.take(len(verdict.cases)):
            verdict = Verdict(Status.ERROR, f"results: the run's per-test results passed "
                              f"{self.options.cases.total:,} (a cap that keeps tagmatrix's "
                              "memory bounded); this cell's were dropped", Stage.RESULTS)
        if verdict.status is Status.FAILED and not verdict.cases:
            # no per-test results: the command's words say why ("No module named
            # pytest") better than its exit code
            verdict = without_results(job, verdict, execution.exit_code,
                                      cell_log.output_excerpt())
        return verdict

    def _attempt(self, job: Job, cell_log: CellLog, number: int) -> tuple[CellResult, bool]:
        """One try; returns its result and whether an infrastructure fault may pass."""
        started_at, clock = now_iso(), time.monotonic()
        result = replace(job_result(job, Status.ERROR, ""), engine=self.engine.name)
        retryable = False
        own_s = 0.0
        judged = False
        try:
            cell_log.note(f"cell {job.id}: python {job.cell.python} variant "
                          f"{job.cell.variant or '(default)'} on engine {self.engine.name}"
                          + (f", attempt {number}" if number > 1 else ""))
            if job.build is None or number > 1:
                cell_log.section("build" if job.build else "image")
            built = self._prepare(job, cell_log, number)
            image, own_s = built.image, built.own_s
            started = self.engine.start(job, image, cell_log, self.ctx)
            try:
                execution = self._execute(started, cell_log)
            finally:
                self.engine.remove(started)
            verdict = self._judge(job, execution, cell_log)
            from .warnings_ledger import read_cell  # only when cells run

            ledger, dropped = read_cell(execution.warnings, job.id)
            judged = True
            cell_log.section(f"result: {verdict.status}"
                             + (f" ({verdict.reason})" if verdict.reason else ""))
            result = replace(
                result, status=verdict.status, reason=verdict.reason, stage=verdict.stage,
                exit_code=execution.exit_code,
                image_digest=image.base.digest, built_image=image.reference,
                base_size=image.base.size, image_size=image.size,
                base_labels=dict(image.base.labels),
                engine=self.engine.name, node=execution.node, pull_s=round(execution.pull_s, 3),
                build_s=round(image.build_s, 3), run_s=round(execution.run_s, 3),
                tests=TestCounts.of(verdict.cases), cases=verdict.cases,
                failing_tests=tuple(c.key for c in verdict.cases if c.outcome.bad),
                flaky_tests=tuple(c.key for c in verdict.cases if c.flaky),
                project_digest=image.project_digest,
                interpreter=execution.interpreter,
                packages=dict(execution.packages), install=execution.install,
                started_at=execution.started_at, finished_at=execution.finished_at,
                warnings=ledger, warnings_dropped=dropped)
            own_s += execution.run_s
        except EngineUnavailable as exc:
            # this engine's queued cells will not start; running ones fail on their own
            self.engine_lost = self.engine_lost or exc
            self.halt.set(exc.message)
            result = replace(result, status=Status.ERROR, reason=exc.message, stage=Stage.ENGINE)
            cell_log.note(f"error: {exc.message}")
        except CellError as exc:
            status = Status.CANCELLED if self.ctx.cancel.is_set() else Status.ERROR
            result = replace(result, status=status, reason=exc.message, stage=exc.stage,
                             image_digest=result.image_digest or exc.image_digest)
            if exc.stage in (Stage.PULL, Stage.BUILD, Stage.PUSH):
                # the build it tried (ahead, in the build pool, or now), for the reports
                own_s = self._own_build_s(job) or (time.monotonic() - clock)
                result = replace(result, build_s=round(own_s, 3))
            retryable = exc.retryable and status is Status.ERROR
            cell_log.note(f"error: {exc.message}")
        except Exception as exc:  # one cell's bug must not lose the other cells' results
            log.exception("cell %s: internal error", job.id)
            result = replace(result, status=Status.ERROR, stage=Stage.INTERNAL,
                             reason=f"internal error: {type(exc).__name__}: {exc}")
            cell_log.note(f"internal error (see tagmatrix.log): {exc}")
        if not judged:  # an error before the tests' verdict: the log ends with it too
            cell_log.section(f"result: {result.status} ({result.reason})")
        result = replace(result, duration_s=round(own_s, 3),
                         started_at=result.started_at or started_at,
                         finished_at=result.finished_at or now_iso())
        return result, retryable


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff with "equal jitter": half the step, plus up to half at random,
    so retries of many cells hit a rate-limited registry at different moments."""
    ceiling = min(60.0, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
