"""What each ``tagmatrix`` command does (cli.py parses and maps errors to exit codes).
Imported only once a command is known: ``--version`` and ``--help`` never load it, and
each command imports the rest of what it uses (the Docker SDK only where it talks to
an engine)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .config import Config, load_config, read_image
from .errors import Cancelled, ExitCode, UsageError
from .matrix import Selector
from .plan import Job, check_selection, make_plan
from .results import Gate, RunResult, Status, load_results
from .settings import MAX_PARALLEL

if TYPE_CHECKING:
    from rich.console import Console

    from .run import Cancellation, RunRequest


class Out:
    """The terminal, made on first use: importing rich costs about 25 ms, and a command
    that prints one plain line (validate) needs none of it."""

    @functools.cached_property
    def console(self) -> Console:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal:  # CI logs: do not squeeze tables into 80 columns
            console = Console(highlight=False, width=max(console.width, 160))
        return console


def _selectors(texts: Sequence[str] | None) -> tuple[Selector, ...]:
    out = []
    for text in texts or ():
        try:
            out.append(Selector.parse(text))
        except ValueError as exc:
            raise UsageError(f"--only {text!r}: {exc} (use key=glob[,key=glob] or a glob on "
                             "cell ids)") from exc
    return tuple(out)


def _load(args: argparse.Namespace) -> Config:
    return load_config(Path(args.file), profile=getattr(args, "profile", None))


def cmd_history(args: argparse.Namespace, out: Out) -> int:
    from .reports import history_view

    return history_view.command(args, out.console, _load)


def cmd_plan(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    config = _load(args)
    if args.engine:
        config.require_engine(args.engine)
    only = _selectors(args.only)
    check_selection(config, only)
    plan = make_plan(config, config.catalogue, only=only, engine=args.engine)
    rows: list[dict[str, Any]] = [{
        "id": job.id, "python": job.cell.python, "variant": job.cell.variant,
        "axes": job.cell.values(), "image": job.base_image, "platform": job.platform,
        "version": job.expected_version,  # what the catalogue says the tag holds
        "state": job.state, "reason": job.reason, "gating": job.gating,
        "origin": job.cell.origin, "command": list(job.command), "timeout": job.timeout,
        "engine": job.engine, "install": _install_of(job),
    } for job in plan.jobs]
    if args.json:
        print(json.dumps({"cells": rows, "catalogue": plan.catalogue_source}, indent=2))
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{config.file}" + (f" (profile {config.profile})"
                                            if config.profile else ""), title_justify="left")
    installs = any(row["install"] for row in rows)
    for name in ("cell", "image", "platform", "engine", *(["install"] if installs else []),
                 "state", "gating", "reason"):
        table.add_column(name, overflow="fold")
    for row in rows:  # Text: "[tests]" in a string would be read as rich markup
        table.add_row(Text(row["id"]), Text(row["image"]), row["platform"],
                      Text(row["engine"] or "-"),
                      *([Text(_install_text(row["install"]))] if installs else []),
                      "[green]planned[/]" if row["state"] == "planned" else "[dim]skipped[/]",
                      "yes" if row["gating"] else "allowed to fail", Text(row["reason"]))
    console.print(table)
    planned = sum(1 for r in rows if r["state"] == "planned")
    noun = "cell" if len(rows) == 1 else "cells"
    console.print(f"{len(rows)} {noun}: {planned} planned, {len(rows) - planned} skipped "
                  f"(catalogue: {plan.catalogue_source})")
    return 0


def _install_of(job: Job) -> dict[str, Any] | None:
    """What the cell installs (the install flow), as plan --json shows it."""
    step = job.build.install if job.build is not None else None
    if step is None:
        return None
    return {"project": step.kind.value, "extras": list(step.extras),
            "groups": list(step.groups), "requirements": list(step.requirements),
            "resolution": step.resolution.value}


def _install_text(install: dict[str, Any] | None) -> str:
    """``sdist [tests] +group test -r req.txt (lowest-direct)`` for the plan's table."""
    if install is None:
        return "-"
    return " ".join([install["project"],
                     *([f"[{','.join(install['extras'])}]"] if install["extras"] else []),
                     *(f"+group {g}" for g in install["groups"]),
                     *(f"-r {r}" for r in install["requirements"]),
                     f"({install['resolution']})"])


def cmd_tags(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    from . import catalogue as store

    path = Path(args.file)
    registry, repository = "docker.io", "library/python"
    if path.is_file():
        image = read_image(path)
        registry, repository = image.registry, image.repository
    elif args.file != "matrix.yaml":
        raise UsageError(f"{path}: no such file")
    elif args.builtin:  # no matrix file here: back to the built-in list everywhere
        removed = store.forget_all()
        console.print("built-in catalogue for every registry"
                      + (f" ({len(removed)} refreshed list(s) removed)" if removed else ""))
        return 0
    if args.builtin:
        dropped = store.forget(registry, repository)
        console.print(f"{registry}/{repository}: built-in catalogue"
                      + (" (refreshed list removed)" if dropped else ""))
        return 0
    if args.refresh:
        found, saved = store.refresh(registry, repository)
        console.print(f"{registry}/{repository}: {len(found.published_tags())} tags, saved to "
                      f"{saved}")
    else:
        found = store.catalogue_for(registry, repository)
    tags = found.published_tags()
    if args.json:
        print(json.dumps({"source": found.source, "tags": tags}, indent=2))
        return 0
    console.print(f"catalogue: {found.source} ({len(tags)} tags)")
    if found.tags is None:
        for release in found.releases:
            kind = " (pre-release)" if release.prerelease else ""
            console.print(f"  {release.family:8} {release.version:10}{kind}  "
                          + " ".join(release.variants))
    else:
        for version in found.versions():
            console.print(f"  {version:12} " + " ".join(
                t[len(version) + 1:] or "(default)" for t in tags
                if t == version or t.startswith(version + "-")))
    return 0


def cmd_report(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    from .reportio import rerender
    from .reports.summary import print_terminal

    run = rerender(Path(args.reports))
    print_terminal(run, console, reports=args.reports)
    if args.exit_code and not run.gate_passed:
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_clean(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    from .cleanup import sweep
    from .engine.factory import connect
    from .labels import project_id
    from .settings import DEFAULT_ENGINES

    if args.images and not (args.file or args.all_projects):
        raise UsageError("--images removes a project's build cache: name the project with "
                         "-f matrix.yaml, or say --all-projects")
    config = load_config(Path(args.file)) if args.file else None
    engines = config.engines if config else DEFAULT_ENGINES
    project = None if args.all_projects or config is None else project_id(config.project)
    verb = "would remove" if args.dry_run else "removed"
    for settings in engines:
        engine = connect(settings, workers=1, pull="never")
        try:
            decision = sweep(engine, all_hosts=args.all_hosts, images=args.images,
                             project=project, dry_run=args.dry_run)
            for item in decision.remove:
                console.print(f"{verb} {item.kind} {item.name or item.id[:12]}"
                              + (f" (run {item.run_id})" if item.run_id else ""))
            for item, why in decision.keep:
                console.print(f"kept {item.kind} {item.name or item.id[:12]}: {why}")
            console.print(f"engine {settings.name}: {len(decision.remove)} {verb}, "
                          f"{len(decision.keep)} kept")
        finally:
            engine.close()
    return 0


def cmd_lock(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    from .files import kernel_path
    from .lock import lock_path, resolve, write

    config = _load(args)
    only = _selectors(args.only)
    check_selection(config, only)
    path = Path(args.output) if args.output else lock_path(config)
    if kernel_path(path) or (path.exists() and (path.is_symlink() or not path.is_file())):
        raise UsageError(f"-o {path}: not a regular file (refusing to replace it)")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise UsageError(f"-o {path}: {path.parent} is not a folder this user can write")
    plan = make_plan(config, config.catalogue, only=only)
    found = resolve(config, plan.jobs)
    try:
        write(found, path)
    except OSError as exc:
        raise UsageError(f"-o {path}: cannot write it ({exc.strerror})") from exc
    for tag, digest in sorted(found.digests.items()):
        console.print(f"  {tag:32} {digest}")
    console.print(f"{path}: {len(found.digests)} images pinned "
                  f"({found.registry}/{found.repository})")
    return 0


def cmd_validate(args: argparse.Namespace, out: Out) -> int:
    config = _load(args)
    count = len(config.cells)
    print(f"{config.file}: OK ({count} cell{'' if count == 1 else 's'})")
    return 0


def _run_request(args: argparse.Namespace, out: Out) -> RunRequest | None:
    """What ``tagmatrix run`` was asked for, checked; None: nothing to run."""
    from .gates import parse_fail_on
    from .insights import Check
    from .nightly import prepare
    from .reports import history_view
    from .run import RunRequest

    config = _load(args)
    parallel = args.parallel or config.parallel
    if not 1 <= parallel <= MAX_PARALLEL:
        raise UsageError(f"--parallel {parallel}: must be between 1 and {MAX_PARALLEL}")
    gate, checks = parse_fail_on(args.fail_on)
    compared = ([Gate.REGRESSIONS.value] if gate is Gate.REGRESSIONS else []) + \
        [c.value for c in checks if c is Check.NEW_WARNINGS]
    if compared and not args.baseline:
        raise UsageError(f"--fail-on {compared[0]} needs --baseline RESULTS_JSON "
                         "(or --baseline auto)")
    if args.baseline == "auto" and args.no_history:
        raise UsageError("--baseline auto reads the run history: drop --no-history")
    baseline = _results(Path(args.baseline), "--baseline") \
        if args.baseline and args.baseline != "auto" else None
    cells = None
    if args.rerun_failed is not None:
        earlier = _results(Path(args.rerun_failed or Path(args.reports) / "results.json"),
                           "--rerun-failed")
        cells = frozenset(c.id for c in earlier.cells
                          if c.status in (Status.FAILED, Status.ERROR, Status.TIMEOUT))
        if not cells:
            out.console.print("nothing to rerun: no cell failed, errored or timed out")
            return None
    check_selection(config, _selectors(args.only), cells)
    locked = None
    if args.locked is not None:
        from .lock import lock_path
        from .lock import read as read_lock

        locked = read_lock(Path(args.locked) if args.locked else lock_path(config))
    history, found = prepare(config, gate=gate, checks=checks,
                             auto_baseline=args.baseline == "auto",
                             path=None if args.no_history else history_view.history_file(
                                 config, args.history))
    if args.baseline == "auto":
        baseline = found
    return RunRequest(config=config, reports=Path(args.reports), parallel=parallel,
                      parallel_given=args.parallel, wait=args.wait, gate=gate,
                      only=_selectors(args.only), engine=args.engine, baseline=baseline,
                      cells=cells, locked=locked, history=history)


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    console = out.console
    from .engine.factory import connect  # imports the docker SDK: only when running
    from .progress import progress_for
    from .reports.summary import print_terminal
    from .run import Cancellation, execute

    request = _run_request(args, out)
    if request is None:
        return 0
    config, parallel = request.config, request.parallel
    cancellation = Cancellation()
    previous = _install_signal_handlers(cancellation)
    try:
        with progress_for(quiet=args.quiet, verbose=args.verbose) as progress:
            result = execute(
                request,
                engine_factory=lambda settings: connect(
                    settings, workers=settings.parallel or parallel, pull=config.image.pull),
                cancellation=cancellation, on_event=progress)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from .reports.github import commands, fenced

        # the summary quotes what tests printed: no line of it may be a runner command
        with fenced(console):
            print_terminal(result, console, reports=str(request.reports))
        print("\n".join(commands(result)), flush=True)
    else:
        print_terminal(result, console, reports=str(request.reports))
    if result.cancelled:
        raise Cancelled(result.cancelled)
    return ExitCode.OK if result.gate_passed else ExitCode.FAILED


def _results(path: Path, flag: str) -> RunResult:
    try:
        return load_results(path)
    except FileNotFoundError as exc:
        raise UsageError(f"{flag} {path}: no such file") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{flag} {path}: not a tagmatrix results.json ({exc})") from exc


def _install_signal_handlers(cancellation: Cancellation) -> dict[int, Any]:
    """SIGINT/SIGTERM: stop scheduling and kill what runs; a second SIGINT exits at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if cancellation.event.is_set():
            # A second signal forces the exit now: no reports, containers may stay
            # behind (their labels let `tagmatrix clean` or the next run remove them).
            print(f"\ntagmatrix: {name} again: exiting now; `tagmatrix clean` removes "
                  "what is left", file=sys.stderr, flush=True)
            os._exit(Cancelled(name).exit_code)
        print(f"\ntagmatrix: {name}: cancelling (killing running containers)...",
              file=sys.stderr, flush=True)
        cancellation.cancel(name)

    previous: dict[int, Any] = {}
    # SIGHUP: the terminal closed or the SSH session dropped; like SIGTERM, the run stops
    # cleanly (containers removed, reports written) instead of dying at once
    # SIGQUIT, SIGUSR1 and SIGUSR2 would otherwise end the process with its containers
    # still running (until the next run's sweep): stopped cleanly too
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2):
        previous[signum] = signal.signal(signum, handler)
    return previous


COMMANDS = {"run": cmd_run, "plan": cmd_plan, "validate": cmd_validate, "tags": cmd_tags,
            "report": cmd_report, "clean": cmd_clean, "lock": cmd_lock,
            "history": cmd_history}
