"""The command line's grammar: argparse only, so that ``--help``, ``--version`` and usage
errors cost no more than Python's own start-up (the commands import what they use)."""

from __future__ import annotations

import argparse
from typing import Any

from . import __version__


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
    add_history_options(run)
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
    add_history_parser(sub)
    return parser


def add_history_options(run: argparse.ArgumentParser) -> None:
    """``tagmatrix run --history PATH | --no-history``."""
    where = run.add_mutually_exclusive_group()
    where.add_argument("--history", metavar="PATH",
                       help="record the run in this history file (default: history.path of "
                            "the matrix file, else .tagmatrix/history.db beside it)")
    where.add_argument("--no-history", action="store_true",
                       help="neither read nor record a run history")


def add_history_parser(sub: Any) -> None:
    """``tagmatrix history [--json] [--cell GLOB] [--test SUBSTRING] [--last N]``."""
    history = sub.add_parser("history", help="the run history: runs, a cell's or a test's "
                                             "outcomes over time")
    history.add_argument("-f", "--file", default="matrix.yaml",
                         help="the matrix file whose history (default: ./matrix.yaml)")
    history.add_argument("--history", metavar="PATH",
                         help="the history file (default: history.path of the matrix file, "
                              "else .tagmatrix/history.db beside it)")
    history.add_argument("--cell", metavar="GLOB", help="only cells whose id matches")
    history.add_argument("--test", metavar="SUBSTRING",
                         help="tests whose id contains this, over time")
    history.add_argument("--last", type=int, default=20, metavar="N",
                         help="the last N runs (default 20)")
    history.add_argument("--json", action="store_true", help="machine-readable output")
