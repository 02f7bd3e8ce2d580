"""The ``tagmatrix`` command. The one place where errors become exit codes.

Exit codes: 0 every gating cell passed; 1 a gating cell failed, errored or
timed out; 2 bad configuration or usage; 3 the engine cannot be reached or
was lost; 130 / 143 cancelled by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from . import __version__
from .config import Config, load_config, read_image
from .errors import Cancelled, ExitCode, TagmatrixError, UsageError
from .matrix import Selector
from .plan import check_selection, make_plan
from .progress import progress_for
from .reports import history_view
from .reports.summary import print_terminal
from .results import Gate, RunResult, Status, load_results
from .run import Cancellation, RunRequest, execute
from .runlog import attach_stderr, detach
from .schema import schema
from .settings import MAX_PARALLEL


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


def _add_common(parser: argparse.ArgumentParser, *, only: bool = True) -> None:
    parser.add_argument("-f", "--file", default="matrix.yaml",
                        help="the matrix file (default: ./matrix.yaml)")
    parser.add_argument("--profile", help="apply profiles.NAME from the matrix file")
    if only:
        parser.add_argument("--only", action="append", metavar="EXPR",
                            help="run only matching cells: key=glob[,key=glob] or a glob on "
                                 "cell ids (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagmatrix",
        description="Run a project's tests across a matrix of official Python Docker images.")
    parser.add_argument("--version", action="version", version=f"tagmatrix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="build and test every cell of the matrix")
    _add_common(run)
    run.add_argument("--reports", default="reports", help="output folder (default: ./reports)")
    run.add_argument("--parallel", type=int, help="cells at once (default: from the file)")
    run.add_argument("-q", "--quiet", action="store_true", help="only final states")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="details of every state change, and the run log's INFO lines")
    run.add_argument("--engine", help="run every cell on this engine (from engines:)")
    run.add_argument("--baseline", metavar="RESULTS_JSON",
                     help="compare with an earlier run: new failures, fixed, still failing, "
                          "flaky, and why (project or base image); 'auto': the history's "
                          "last run on this branch (or of this matrix file)")
    run.add_argument("--fail-on", action="append", metavar="GATE",
                     help="failures (default): any failing gating cell fails the run; "
                          "regressions: only new failures against --baseline do (not tests "
                          "known as flaky); slowdowns, new-warnings: add those gates "
                          "(repeatable, or comma-separated)")
    history_view.add_run_options(run)
    run.add_argument("--locked", nargs="?", const="", metavar="LOCK",
                     help="build from the digests in matrix.lock (default: next to the "
                          "matrix file); fail if one is gone")
    run.add_argument("--wait", action="store_true",
                     help="if another run holds the reports folder, wait for it (default: "
                          "stop at once, naming it)")
    run.add_argument("--rerun-failed", nargs="?", const="", metavar="RESULTS_JSON",
                     help="run only the cells that failed, errored or timed out in a "
                          "previous run (default: the reports folder's results.json)")

    plan = sub.add_parser("plan", help="show the expanded matrix without running anything")
    _add_common(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--engine", help="plan every cell on this engine (from engines:)")

    lock = sub.add_parser("lock", help="pin every cell's base image to its digest "
                                       "(matrix.lock; asks the registry, pulls nothing)")
    _add_common(lock)
    lock.add_argument("-o", "--output", help="where (default: matrix.lock next to the file)")

    validate = sub.add_parser("validate", help="check the matrix file; exit 0 or 2")
    _add_common(validate, only=False)

    clean = sub.add_parser("clean", help="remove what crashed or killed runs left behind")
    clean.add_argument("-f", "--file", help="clean every engine of this matrix file "
                                            "(default: the environment's Docker engine)")
    clean.add_argument("--all-hosts", action="store_true",
                       help="also runs started on other hosts (their liveness cannot be "
                            "checked from here)")
    clean.add_argument("--images", action="store_true",
                       help="also the images tagmatrix built for the -f file's project (the "
                            "build cache)")
    clean.add_argument("--all-projects", action="store_true",
                       help="with --images: every project's images, other users' included")
    clean.add_argument("--dry-run", action="store_true", help="only list what would go")

    report = sub.add_parser("report", help="re-render every report from results.json")
    report.add_argument("--reports", default="reports", help="the folder (default: ./reports)")
    report.add_argument("--exit-code", action="store_true",
                        help="exit 1 when the run had a failing gating cell (default: 0 once "
                             "the reports are written)")

    tags = sub.add_parser("tags", help="the catalogue of published python image tags")
    tags.add_argument("-f", "--file", default="matrix.yaml",
                      help="registry and repository from this file (default: ./matrix.yaml; "
                           "docker.io/library/python if it does not exist)")
    tags.add_argument("--refresh", action="store_true",
                      help="ask the registry for its tags (no pull) and plan against them")
    tags.add_argument("--builtin", action="store_true",
                      help="forget a refreshed list: back to the built-in catalogue")
    tags.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("schema", help="print the JSON Schema of matrix.yaml")
    history_view.add_parser(sub)
    return parser


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    return history_view.command(args, console, _load)


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
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
        "engine": job.engine,
    } for job in plan.jobs]
    if args.json:
        print(json.dumps({"cells": rows, "catalogue": plan.catalogue_source}, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"{config.file}" + (f" (profile {config.profile})"
                                            if config.profile else ""), title_justify="left")
    for name in ("cell", "image", "platform", "engine", "state", "gating", "reason"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(row["id"], row["image"], row["platform"], row["engine"] or "-",
                      "[green]planned[/]" if row["state"] == "planned" else "[dim]skipped[/]",
                      "yes" if row["gating"] else "allowed to fail", row["reason"])
    console.print(table)
    planned = sum(1 for r in rows if r["state"] == "planned")
    console.print(f"{len(rows)} cells: {planned} planned, {len(rows) - planned} skipped "
                  f"(catalogue: {plan.catalogue_source})")
    return 0


def cmd_tags(args: argparse.Namespace, console: Console) -> int:
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


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .reportio import rerender

    run = rerender(Path(args.reports))
    print_terminal(run, console, reports=args.reports)
    if args.exit_code and not run.gate_passed:
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_clean(args: argparse.Namespace, console: Console) -> int:
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


def cmd_lock(args: argparse.Namespace, console: Console) -> int:
    from .lock import lock_path, resolve, write

    config = _load(args)
    only = _selectors(args.only)
    check_selection(config, only)
    path = Path(args.output) if args.output else lock_path(config)
    virtual = next((r for r in ("/proc", "/sys", "/dev") if path.resolve().is_relative_to(r)),
                   None)
    if virtual or (path.exists() and (path.is_symlink() or not path.is_file())):
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


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    config = _load(args)
    console.print(f"{config.file}: OK ({len(config.cells)} cells)")
    return 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from .engine.factory import connect  # imports the docker SDK: only when running
    from .gates import parse_fail_on
    from .insights import Check
    from .nightly import prepare

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
            console.print("nothing to rerun: no cell failed, errored or timed out")
            return 0
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
    request = RunRequest(config=config, reports=Path(args.reports), parallel=parallel,
                         parallel_given=args.parallel, wait=args.wait, gate=gate,
                         only=_selectors(args.only), engine=args.engine, baseline=baseline,
                         cells=cells, locked=locked, history=history)
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
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, handler)
    return previous


COMMANDS = {"run": cmd_run, "plan": cmd_plan, "validate": cmd_validate, "tags": cmd_tags,
            "report": cmd_report, "clean": cmd_clean, "lock": cmd_lock,
            "history": cmd_history}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the command, map errors to exit codes."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    console = Console(highlight=False)
    if not console.is_terminal:  # CI logs: do not squeeze tables into 80 columns
        console = Console(highlight=False, width=max(console.width, 160))
    warnings = attach_stderr(sys.stderr, verbose=getattr(args, "verbose", False))
    try:
        if args.command == "schema":
            print(json.dumps(schema(), indent=2))
            return 0
        return COMMANDS[args.command](args, console)
    except Cancelled as exc:
        print(f"tagmatrix: {exc}", file=sys.stderr)
        return exc.exit_code
    except TagmatrixError as exc:
        print(f"tagmatrix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outside `run` (plan, tags ...): nothing to clean up
        print("\ntagmatrix: interrupted", file=sys.stderr)
        return ExitCode.SIGINT
    finally:
        detach(warnings)
