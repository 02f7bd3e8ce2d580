"""A whole run: plan, engine, scheduler, reports. Side effects are passed in."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from concurrent_log_handler import ConcurrentRotatingFileHandler

from .celllog import now_iso
from .cleanup import decide, process_start
from .compare import compare
from .config import Config
from .engine import Engine, RunContext
from .errors import EngineUnavailable, UsageError
from .jobs import PLANNED, Plan
from .junit_in import InvalidResults, parse_cell_suite
from .labels import LABEL_HOST, LABEL_MANAGED, LABEL_PID, LABEL_PID_START, LABEL_RUN
from .lock import Lock
from .lock import check as check_lock
from .matrix import Selector
from .plan import make_plan
from .reports import html, junit, summary
from .reports.files import atomic_write, write_json
from .results import CellResult, RunResult, Status, load_results
from .routing import Target
from .scheduler import EventSink, Options, Scheduler, job_result
from .settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What the user asked for on the command line."""

    config: Config
    reports: Path
    parallel: int
    only: tuple[Selector, ...] = ()
    engine: str | None = None  # --engine: every cell there
    baseline: RunResult | None = None  # --baseline: compare with this earlier run
    cells: frozenset[str] | None = None  # --rerun-failed: only these cell ids
    locked: Lock | None = None  # --locked: base images by digest


@dataclass
class Cancellation:
    """Set by signal handlers; read by the scheduler and the engines."""

    event: threading.Event = field(default_factory=threading.Event)
    signal_name: str | None = None

    def cancel(self, signal_name: str) -> None:
        self.signal_name = self.signal_name or signal_name
        self.event.set()


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_labels(run_id: str) -> dict[str, str]:
    """Labels on every container of the run: who owns it, to clean up after crashes."""
    pid = os.getpid()
    return {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_PID: str(pid),
            LABEL_PID_START: process_start(pid), LABEL_HOST: socket.gethostname()}


def sweep(engine: Engine) -> int:
    """Remove what dead runs of this host left behind (a crash, a kill -9)."""
    decision = decide(engine.leftovers())
    for item in decision.remove:
        engine.remove(item)
    if decision.remove:
        log.warning("removed %d leftovers of dead runs: %s", len(decision.remove),
                    ", ".join(sorted({i.run_id for i in decision.remove})))
    return len(decision.remove)


def attach_run_log(reports: Path) -> logging.Handler:
    """reports/tagmatrix.log through concurrent-log-handler: runs sharing the folder
    append safely, and the file rotates instead of growing without bound."""
    reports.mkdir(parents=True, exist_ok=True)
    handler = ConcurrentRotatingFileHandler(str(reports / "tagmatrix.log"),
                                            maxBytes=10 * 1024 * 1024, backupCount=3,
                                            encoding="utf-8")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("orchestrator")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    logging.getLogger("orchestrator").removeHandler(handler)
    handler.close()


def write_reports(run: RunResult, reports: Path, *, step_summary: bool = True) -> None:
    """junit.xml, cells/<id>.xml, results.json, summary.md and index.html, each written
    atomically; summary.md is also appended to $GITHUB_STEP_SUMMARY when set."""
    atomic_write(reports / "junit.xml", junit.render(run.cells))
    for cell in run.cells:
        atomic_write(reports / "cells" / f"{cell.id}.xml", junit.render([cell], name=cell.id))
    write_json(reports / "results.json", run.to_json())
    text = summary.markdown(run)
    atomic_write(reports / "summary.md", text)
    atomic_write(reports / "index.html", html.render(run))
    github = os.environ.get("GITHUB_STEP_SUMMARY") if step_summary else None
    if github:
        with Path(github).open("a", encoding="utf-8") as handle:
            handle.write(text)


def rerender(reports: Path) -> RunResult:
    """`tagmatrix report`: every report again from results.json and cells/<id>.xml."""
    try:
        run = load_results(reports / "results.json")
    except FileNotFoundError as exc:
        raise UsageError(f"{reports}: no results.json (run `tagmatrix run` first)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{reports / 'results.json'}: not a tagmatrix results file "
                         f"({exc})") from exc
    cells = []
    for cell in run.cells:
        path = reports / "cells" / f"{cell.id}.xml"
        if not path.is_file():
            cells.append(cell)
            continue
        try:
            cases, output = parse_cell_suite(path.read_bytes(), cell.id)
        except InvalidResults as exc:
            log.warning("%s: %s", path, exc)
            cells.append(cell)
            continue
        cells.append(replace(cell, cases=tuple(cases), output_tail=output))
    run = replace(run, cells=tuple(cells))
    write_reports(run, reports, step_summary=False)
    return run


def previous_durations(reports: Path) -> dict[str, float]:
    """How long each cell's tests ran last time in this folder, for longest-first
    scheduling (the run time only: waiting for a slot says nothing of a cell's length)."""
    try:
        previous = load_results(reports / "results.json")
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {c.id: c.run_s for c in previous.cells if c.status in (Status.PASSED, Status.FAILED)}


def connect_all(config: Config, engine: str | None,
                factory: Callable[[EngineSettings], Engine]) -> tuple[
                    dict[str, Engine], dict[str, EngineUnavailable]]:
    """The engines a run may use, connected; those that do not answer, with why."""
    settings = {e.name: e for e in config.engines}
    if engine is not None:
        config.require_engine(engine)
    connected: dict[str, Engine] = {}
    down: dict[str, EngineUnavailable] = {}
    for name in [engine] if engine else list(settings):
        try:
            connected[name] = factory(settings[name])
            info = connected[name].info()
            log.info("engine %s: %s %s %s (%s)", name, "/".join(info.oses or (info.os,)),
                     info.arch, info.version, info.description)
        except EngineUnavailable as exc:
            connected.pop(name, None)
            down[name] = exc
            log.error("engine %s: %s", name, exc.message)  # noqa: TRY400 - expected, no trace
    return connected, down


def targets_of(config: Config, engines: dict[str, Engine],
               down: dict[str, EngineUnavailable]) -> list[Target]:
    """Routing targets: what reachable engines report; what the file declares for the rest."""
    out = []
    for settings in config.engines:
        if settings.name in engines:
            info = engines[settings.name].info()
            oses = frozenset(info.oses or (info.os,))
        elif settings.name in down:
            oses = frozenset({settings.platform or "linux"})
        else:
            continue
        out.append(Target(name=settings.name, type=settings.type, oses=oses,
                          pins=settings.cells))
    return out


def execute(request: RunRequest, *, engine_factory: Callable[[EngineSettings], Engine],
            cancellation: Cancellation, on_event: EventSink | None = None) -> RunResult:
    """Run every planned cell on its engine, write the reports; returns the run's result.

    One scheduler per engine, running at once, each with its engine's parallelism;
    an engine that does not answer fails its cells (and the run exits 3) but not the
    others'.
    """
    config = request.config
    handler = attach_run_log(request.reports)
    run_id = new_run_id()
    started_at, clock = now_iso(), time.monotonic()
    events = on_event or (lambda _cell, _state, _detail: None)
    try:
        log.info("run %s: %s (profile %s), %d cells, parallel %d", run_id, config.file,
                 config.profile, len(config.cells), request.parallel)
        engines, down = connect_all(config, request.engine, engine_factory)
        if not engines:
            raise next(iter(down.values()))
        try:
            for engine in engines.values():
                sweep(engine)
            locked = request.locked
            plan = make_plan(config, config.catalogue, only=request.only,
                             targets=targets_of(config, engines, down), engine=request.engine,
                             cells=request.cells,
                             pinned={t: locked.reference(t) for t in locked.digests}
                             if locked else None)
            if locked is not None:
                check_lock(locked, config, plan.jobs)
            ctx = RunContext(run_id=run_id, labels=run_labels(run_id),
                             cancel=cancellation.event)
            results: dict[str, CellResult] = {}
            for job in plan.jobs:
                if job.state != PLANNED:
                    results[job.id] = job_result(job, Status.SKIPPED, job.reason)
                    events(job.id, "skipped", job.reason)
                elif job.engine in down:
                    results[job.id] = replace(job_result(
                        job, Status.ERROR, f"not run: engine {job.engine}: "
                                           f"{down[job.engine].message}"), stage="engine")
                    events(job.id, "error", results[job.id].reason)
            schedulers = _schedulers(request, engines, plan, ctx, events)
            results.update(_run_all(schedulers, engines, ctx))
            if cancellation.event.is_set():
                for engine in engines.values():
                    engine.kill_run(ctx)
        finally:
            for engine in engines.values():
                engine.close()
        run = RunResult(run_id=run_id, started_at=started_at, finished_at=now_iso(),
                        duration_s=time.monotonic() - clock,
                        cells=tuple(results[job.id] for job in plan.jobs),
                        config=str(config.file), profile=config.profile,
                        cancelled=cancellation.signal_name)
        if request.baseline is not None:
            run = compare(run, request.baseline)
        write_reports(run, request.reports)
        lost = [s.engine_lost for s in schedulers if s.engine_lost is not None]
        lost += [down[j.engine] for j in plan.jobs if j.state == PLANNED and j.engine in down]
        if lost:
            log.error("engine lost or unreachable: %s", lost[0])
            raise lost[0]
        log.info("run %s finished: %s", run_id, summary.verdict_line(run))
        return run
    finally:
        detach_run_log(handler)


def _schedulers(request: RunRequest, engines: dict[str, Engine], plan: Plan,
                ctx: RunContext, events: EventSink) -> list[Scheduler]:
    config = request.config
    settings = {e.name: e for e in config.engines}
    secret_values = tuple(e.value for e in config.test.env if e.secret)
    expected = previous_durations(request.reports)
    schedulers = []
    for name, engine in engines.items():
        jobs = [j for j in plan.jobs if j.state == PLANNED and j.engine == name]
        if not jobs:
            continue
        parallel = settings[name].parallel or request.parallel
        schedulers.append(Scheduler(
            engine, jobs, reports=request.reports, ctx=ctx,
            options=Options(parallel=parallel, log_max_bytes=config.log_max_bytes,
                            retries=config.retries, build_parallel=config.build.parallel,
                            expected=expected),
            on_event=events, secrets=secret_values))
    return schedulers


def _run_all(schedulers: list[Scheduler], engines: dict[str, Engine],
             ctx: RunContext) -> dict[str, CellResult]:
    """Every engine's scheduler at once; cancellation kills on every engine."""
    results: dict[str, CellResult] = {}
    finished = threading.Event()
    watcher = threading.Thread(target=_kill_on_cancel,
                               args=(list(engines.values()), ctx, finished), daemon=True)
    watcher.start()
    lock = threading.Lock()

    def run_one(scheduler: Scheduler) -> None:
        cells = scheduler.run()
        with lock:
            results.update({c.id: c for c in cells})

    threads = [threading.Thread(target=run_one, args=(s,), name=f"engine-{s.engine.name}")
               for s in schedulers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins: the main thread stays free for signals
    finally:
        finished.set()
        watcher.join()
    return results


def _kill_on_cancel(engines: list[Engine], ctx: RunContext, finished: threading.Event) -> None:
    # Cancellation kills the run's containers at once, so waits return promptly.
    while not finished.is_set():
        if ctx.cancel.wait(0.1):
            for engine in engines:
                killed = engine.kill_run(ctx)
                log.info("cancelled: removed %d objects on engine %s", killed, engine.name)
            return
