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
from .config import Config
from .engine import Engine, RunContext
from .errors import UsageError
from .junit_in import InvalidResults, parse_cell_suite
from .labels import LABEL_HOST, LABEL_MANAGED, LABEL_PID, LABEL_PID_START, LABEL_RUN
from .matrix import Selector
from .plan import Plan, make_plan
from .reports import html, junit, summary
from .reports.files import atomic_write, write_json
from .results import RunResult, Status, load_results
from .scheduler import EventSink, Options, Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What the user asked for on the command line."""

    config: Config
    reports: Path
    parallel: int
    only: tuple[Selector, ...] = ()


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


def plan_for(request: RunRequest, platforms: tuple[str, ...]) -> Plan:
    return make_plan(request.config, request.config.catalogue, only=request.only,
                     platforms=platforms)


def execute(request: RunRequest, *, engine_factory: Callable[[], Engine],
            cancellation: Cancellation, on_event: EventSink | None = None) -> RunResult:
    """Run every planned cell and write the reports; returns the run's result."""
    config = request.config
    handler = attach_run_log(request.reports)
    run_id = new_run_id()
    started_at, clock = now_iso(), time.monotonic()
    try:
        log.info("run %s: %s (profile %s), %d cells, parallel %d", run_id, config.file,
                 config.profile, len(config.cells), request.parallel)
        engine = engine_factory()
        try:
            info = engine.info()
            log.info("engine %s: %s %s %s", engine.name, info.os, info.arch, info.version)
            sweep(engine)
            plan = plan_for(request, (info.os,))
            ctx = RunContext(run_id=run_id, labels=run_labels(run_id),
                             cancel=cancellation.event)
            secret_values = tuple(e.value for e in config.test.env if e.secret)
            scheduler = Scheduler(engine, list(plan.jobs), reports=request.reports, ctx=ctx,
                                  options=Options(parallel=request.parallel,
                                                  log_max_bytes=config.log_max_bytes,
                                                  retries=config.retries,
                                                  build_parallel=config.build.parallel,
                                                  expected=previous_durations(request.reports)),
                                  on_event=on_event, secrets=secret_values)
            finished = threading.Event()
            watcher = threading.Thread(target=_kill_on_cancel, args=(engine, ctx, finished),
                                       daemon=True)
            watcher.start()
            try:
                cells = scheduler.run()
            finally:
                finished.set()
                watcher.join()
            if cancellation.event.is_set():
                engine.kill_run(ctx)
        finally:
            engine.close()
        run = RunResult(run_id=run_id, started_at=started_at, finished_at=now_iso(),
                        duration_s=time.monotonic() - clock, cells=tuple(cells),
                        config=str(config.file), profile=config.profile,
                        cancelled=cancellation.signal_name)
        write_reports(run, request.reports)
        if scheduler.engine_lost is not None:
            log.error("engine lost: %s", scheduler.engine_lost)
            raise scheduler.engine_lost
        log.info("run %s finished: %s", run_id, summary.verdict_line(run))
        return run
    finally:
        detach_run_log(handler)


def _kill_on_cancel(engine: Engine, ctx: RunContext, finished: threading.Event) -> None:
    # Cancellation kills the run's containers at once, so waits return promptly.
    while not finished.is_set():
        if ctx.cancel.wait(0.1):
            killed = engine.kill_run(ctx)
            log.info("cancelled: removed %d containers", killed)
            return
