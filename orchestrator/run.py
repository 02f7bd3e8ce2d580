"""A whole run: plan, engines, one scheduler per engine, reports. Side effects are
passed in (the engine factory, the cancellation, the progress sink)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .celllog import now_iso
from .cleanup import process_start, sweep
from .compare import compare
from .config import Config
from .engine import FullEngine, RunContext
from .engines import EngineFactory, connect_all, targets_of
from .errors import EngineUnavailable, InternalError, Stage, UsageError
from .events import EventSink, ignore
from .jobs import PLANNED, Plan
from .labels import (
    LABEL_HOST,
    LABEL_MANAGED,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_PROJECT,
    LABEL_RUN,
    project_id,
)
from .liveruns import registered
from .lock import Lock
from .lock import check as check_lock
from .matrix import Selector
from .plan import make_plan
from .reportdir import ReportsFolder
from .reportio import merge_rerun, previous_durations, write_reports
from .reports import summary
from .results import CellResult, Gate, RunResult, Status
from .runlog import attach_run_log, detach
from .scheduler import Options, Scheduler
from .slots import CaseBudget
from .verdict import job_result

if TYPE_CHECKING:
    from .nightly import HistoryPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What the user asked for on the command line."""

    config: Config
    reports: Path
    parallel: int
    parallel_given: int | None = None  # --parallel: it overrides what an engine says it runs
    only: tuple[Selector, ...] = ()
    engine: str | None = None  # --engine: every cell there
    baseline: RunResult | None = None  # --baseline: compare with this earlier run
    cells: frozenset[str] | None = None  # --rerun-failed: only these cell ids
    locked: Lock | None = None  # --locked: base images by digest
    wait: bool = False  # --wait: for another run that holds the reports folder
    gate: Gate = Gate.FAILURES  # --fail-on
    history: HistoryPlan | None = None  # the run history (None: no insights, nothing kept)


@dataclass
class Cancellation:
    """Set by signal handlers; read by the scheduler and the engines."""

    event: threading.Event = field(default_factory=threading.Event)
    signal_name: str | None = None

    def cancel(self, signal_name: str) -> None:
        self.signal_name = self.signal_name or signal_name
        self.event.set()


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_labels(run_id: str, project: str = "") -> dict[str, str]:
    """Labels on every container of the run: who owns it, to clean up after crashes, and
    whose project it is (`clean --images` keeps a live run's images)."""
    pid = os.getpid()
    labels = {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_PID: str(pid),
              LABEL_PID_START: process_start(pid), LABEL_HOST: socket.gethostname()}
    return {**labels, LABEL_PROJECT: project} if project else labels


def execute(request: RunRequest, *, engine_factory: EngineFactory,
            cancellation: Cancellation, on_event: EventSink | None = None) -> RunResult:
    """Run every planned cell on its engine, write the reports; returns the run's result.

    One scheduler per engine, running at once, each with its engine's parallelism;
    an engine that does not answer fails its cells (and the run exits 3) but not the
    others'.
    """
    config = request.config
    run_id = new_run_id()
    folder, handler = _open_folder(request, run_id)
    started_at, clock = now_iso(), time.monotonic()
    events = on_event or ignore
    ctx = RunContext(run_id=run_id, labels=run_labels(run_id, project_id(config.project)),
                     cancel=cancellation.event)
    failure: InternalError | None = None
    live = ExitStack()  # this run counts as live for `clean --images` until it ends
    live.enter_context(registered(run_id, project_id(config.project)))
    try:
        log.info("run %s: %s%s, %d cells, parallel %d", run_id, config.file,
                 f" (profile {config.profile})" if config.profile else "",
                 len(config.cells), request.parallel)
        engines, down = connect_all(config, request.engine, engine_factory)
        if not engines:
            raise next(iter(down.values()))
        schedulers: list[Scheduler] = []
        try:
            _sweep(engines)
            locked = request.locked
            plan = make_plan(config, config.catalogue, only=request.only,
                             targets=targets_of(config, engines, down), engine=request.engine,
                             cells=request.cells, reports=request.reports,
                             pinned={t: locked.reference(t) for t in locked.digests}
                             if locked else None)
            if locked is not None:
                check_lock(locked, config, plan.jobs)
            results = _settled(plan, down, events)
            schedulers = _schedulers(request, engines, plan, ctx, events)
            failure = _run_all(schedulers, engines, ctx, results)
            for job in plan.jobs:  # an engine's scheduler failed before settling its cells
                if job.id not in results and failure is not None:
                    results[job.id] = job_result(job, Status.ERROR, f"not run: {failure}",
                                                 Stage.INTERNAL)
        finally:
            if cancellation.event.is_set():
                for engine in engines.values():
                    engine.kill_run(ctx)
            for engine in engines.values():
                engine.close()
        run = RunResult(run_id=run_id, started_at=started_at, finished_at=now_iso(),
                        duration_s=time.monotonic() - clock,
                        cells=tuple(results[job.id] for job in plan.jobs),
                        config=str(config.file), profile=config.profile,
                        cancelled=cancellation.signal_name, gate=request.gate)
        run, not_merged = _report(request, run, folder)
        if failure is not None:
            raise failure
        if not_merged:  # the reports hold the rerun's cells only; its verdict is no answer
            raise UsageError(f"--rerun-failed: {not_merged}",
                             hint="tagmatrix run (without --rerun-failed)")
        lost = [s.engine_lost for s in schedulers if s.engine_lost is not None]
        lost += [down[j.engine] for j in plan.jobs if j.state is PLANNED and j.engine in down]
        if lost:
            log.info("engine lost or unreachable: %s", lost[0].message)
            raise lost[0]
        log.info("run %s finished: %s", run_id, summary.verdict_line(run))
        return run
    finally:
        live.close()
        detach(handler)
        folder.unlock()


def _report(request: RunRequest, run: RunResult,
            folder: ReportsFolder) -> tuple[RunResult, str]:
    """The run compared, recorded in the history, merged (a rerun) and written; the
    second value: why a rerun was not merged ("" when it was, or was no rerun)."""
    if request.baseline is not None:
        run = compare(run, request.baseline)
    # also for a cancelled run; before a rerun merges: only the cells that ran are kept
    run = _with_history(request, run)
    not_merged = ""
    if request.cells is not None:  # --rerun-failed: the rerun merges into the last run
        matrix = frozenset(cell.id for cell in request.config.cells)  # all, not the rerun's
        run, not_merged = merge_rerun(run, request.reports, matrix)
    write_reports(run, request.reports)
    for stale in folder.remove_stale(c.id for c in run.cells):
        log.info("removed %s: its cell is not part of this run", stale)
    return run, not_merged


def _open_folder(request: RunRequest,
                 run_id: str) -> tuple[ReportsFolder, logging.Handler]:
    """The reports folder checked, locked for this run, and its run log attached."""
    folder = ReportsFolder(request.reports, project=request.config.project)
    folder.lock(run_id, wait=request.wait)
    try:
        folder.prepare()
        folder.writable()
        return folder, attach_run_log(request.reports)
    except BaseException:
        folder.unlock()
        raise


def _with_history(request: RunRequest, run: RunResult) -> RunResult:
    """``run`` with what its history says, recorded there (orchestrator/nightly.py)."""
    if request.history is None:
        return run
    from .nightly import remember  # sqlite3 and the analyses: only when running

    return remember(run, request.config, request.history, request.baseline)


def _sweep(engines: dict[str, FullEngine]) -> None:
    """What dead runs of this host left behind goes first (a crash, a kill -9)."""
    for engine in engines.values():
        swept = sweep(engine)
        if swept.remove:
            log.warning("removed %d leftovers of dead runs on engine %s: %s",
                        len(swept.remove), engine.name,
                        ", ".join(sorted({i.run_id for i in swept.remove})))


def _settled(plan: Plan, down: dict[str, EngineUnavailable],
             events: EventSink) -> dict[str, CellResult]:
    """The cells that will not run: skipped ones, and those of engines that did not
    answer."""
    results: dict[str, CellResult] = {}
    for job in plan.jobs:
        if job.state is not PLANNED:
            results[job.id] = job_result(job, Status.SKIPPED, job.reason)
            events(job.id, Status.SKIPPED, job.reason)
        elif job.engine in down:
            results[job.id] = job_result(
                job, Status.ERROR, f"not run: engine {job.engine}: "
                                   f"{down[job.engine].message}", Stage.ENGINE)
            events(job.id, Status.ERROR, results[job.id].reason)
    return results


def _schedulers(request: RunRequest, engines: dict[str, FullEngine], plan: Plan,
                ctx: RunContext, events: EventSink) -> list[Scheduler]:
    config = request.config
    settings = {e.name: e for e in config.engines}
    # every secret of every cell (test.env and include entries' env): each cell's log and
    # result is redacted of all of them
    secret_values = tuple(sorted({e.value for j in plan.jobs for e in j.env if e.secret}))
    expected = previous_durations(request.reports)
    cases = CaseBudget()  # one for the whole run, every engine's cells together
    schedulers = []
    for name, engine in engines.items():
        jobs = [j for j in plan.jobs if j.state is PLANNED and j.engine == name]
        if not jobs:
            continue
        info = engine.info()
        # the engine's own setting, then --parallel, then what the engine says it runs
        # (a Swarm: its ready nodes), then the file's
        asked = settings[name].parallel or request.parallel_given or info.capacity \
            or request.parallel
        parallel = min(asked, len(jobs))  # more slots than cells would only idle
        if info.cpus and parallel > 2 * info.cpus and not info.capacity:
            log.warning("engine %s: parallel %d is more than twice its %d CPUs: cells will "
                        "slow each other down", name, parallel, info.cpus)
        log.info("engine %s: %d cell(s), %d at once", name, len(jobs), parallel)
        schedulers.append(Scheduler(
            engine, jobs, reports=request.reports, ctx=ctx,
            options=Options(parallel=parallel, log_max_bytes=config.log_max_bytes,
                            retries=config.retries, build_parallel=config.build.parallel,
                            expected=expected, cases=cases),
            on_event=events, secrets=secret_values))
    return schedulers


def _run_all(schedulers: list[Scheduler], engines: dict[str, FullEngine], ctx: RunContext,
             results: dict[str, CellResult]) -> InternalError | None:
    """Every engine's scheduler at once, each in a future, their results into
    ``results``. A scheduler that raises (a bug) stops the run and comes back as an
    InternalError with its cause; cancellation kills on every engine at once."""
    finished = threading.Event()
    watcher = threading.Thread(target=_kill_on_cancel,
                               args=(list(engines.values()), ctx, finished), daemon=True)
    watcher.start()
    pool = ThreadPoolExecutor(max_workers=max(1, len(schedulers)),
                              thread_name_prefix="engine")
    futures: dict[Future[list[CellResult]], Scheduler] = {
        pool.submit(s.run): s for s in schedulers}
    failure: InternalError | None = None
    try:
        pending = set(futures)
        while pending:
            # short waits: the main thread stays free for signals
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                scheduler = futures[future]
                try:
                    results.update({c.id: c for c in future.result()})
                except Exception as exc:
                    log.exception("engine %s: the scheduler failed", scheduler.engine.name)
                    failure = failure or InternalError(
                        f"engine {scheduler.engine.name}: {type(exc).__name__}: {exc}",
                        hint="a bug in tagmatrix: reports/tagmatrix.log has the traceback")
                    for other in schedulers:  # the rest stop too: no half-known run
                        other.halt.set(f"another engine failed: {exc}")
    finally:
        finished.set()
        pool.shutdown(wait=True, cancel_futures=True)
        watcher.join()
    return failure


def _kill_on_cancel(engines: list[FullEngine], ctx: RunContext,
                    finished: threading.Event) -> None:
    # Cancellation kills the run's containers at once, so waits return promptly.
    while not finished.is_set():
        if ctx.cancel.wait(0.1):
            for engine in engines:
                killed = engine.kill_run(ctx)
                log.info("cancelled: removed %d objects on engine %s", killed, engine.name)
            return
