"""Benchmark: the run history at its retention limit (200 runs x 24 cells x 2,000 tests).

Fills a history with synthetic nights (9.6 M per-test rows; 12 tests flaky at 5 %,
one broken on 3.15 from night 150 on, one 3x slower on 3.14 from night 200 on;
every 3.10 test erroring on nights 100-101, an incident; lognormal times per test,
10 % noise), then measures, each the median of several tries on the full history:

- writing one run (48,000 test results; the oldest run pruned in the same
  transaction), target < 1 s;
- "a test over time" by substring (one test, and a substring matching 50 tests of
  which 20 are returned), target < 1 s;
- the other questions a run asks: the ``--baseline auto`` run, flaky tests and
  verdicts (``judge``), slowdowns against cells and history;
- the file's size (WAL checkpointed).

Not a test, a measurement: ``python benchmarks/history_bench.py [--out FILE]``; prints
the figures and writes them as JSON (default reports/history-bench.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.containerrecords import Interpreter  # noqa: E402
from orchestrator.history.analysis import judge, slowdowns  # noqa: E402
from orchestrator.history.records import RunMeta  # noqa: E402
from orchestrator.history.settings import DEFAULT_KEEP  # noqa: E402
from orchestrator.history.store import History  # noqa: E402
from orchestrator.results import CellResult, RunResult, Status, TestCase, TestCounts, TestOutcome  # noqa: E402

CELLS = [f"3.{m}-{v}" for m in range(10, 16) for v in ("slim", "bookworm", "alpine", "trixie")]
TESTS = 2000
FLAKY = 12
TRIES = 5
TARGETS = {"write_s": 1.0, "test_query_s": 1.0}


def _names(count: int) -> list[tuple[str, str]]:
    return [(f"tests.unit.test_module_{i // 40:02d}.TestFeature{i % 7}",
             f"test_case_{i:04d}_checks_behaviour[param-{i % 5}]") for i in range(count)]


def synthetic_run(night: int, rng: random.Random, base: list[float]) -> RunResult:
    """One night: 24 cells x 2,000 tests; flaky tests fail 5 % of the time."""
    cells = []
    for cell_id in CELLS:
        python, _, variant = cell_id.partition("-")
        cases = []
        for index, (classname, name) in enumerate(_names(TESTS)):
            outcome = "passed"
            flaked = index < FLAKY and rng.random() < 0.05
            if night in (100, 101) and python == "3.10":
                outcome = "error"
            elif flaked or (index == FLAKY and night >= 150 and python == "3.15"):
                outcome = "failed"
            elif index % 97 == 96:
                outcome = "skipped"
            seconds = base[index] * rng.lognormvariate(0, 0.1)
            if index == FLAKY + 1 and night >= DEFAULT_KEEP and python == "3.14":
                seconds *= 3
            cases.append(TestCase(classname=classname, name=name, time=round(seconds, 4),
                                  outcome=TestOutcome(outcome)))
        failing = tuple(c.key for c in cases if c.outcome.bad)
        cells.append(CellResult(
            id=cell_id, python=python, variant=variant,
            status=Status.FAILED if failing else Status.PASSED,
            image_digest=f"sha256:{night // 30:064x}",
            project_digest=f"sha256:{night // 10:064x}",
            interpreter=Interpreter(version=f"{python}.{night // 30}"), cases=tuple(cases),
            tests=TestCounts.of(cases), failing_tests=failing, duration_s=60.0))
    stamp = f"2026-{1 + night // 28:02d}-{1 + night % 28:02d}T02:00:00.000Z"
    return RunResult(run_id=f"night-{night:04d}", started_at=stamp, finished_at=stamp,
                     duration_s=600.0, cells=tuple(cells), profile="nightly",
                     config="matrix.yaml")


def _meta(night: int) -> RunMeta:
    packages = {cell: {"pytest": "8.3.1", "attrs": f"23.{night // 50}.0", "numpy": "2.1.0"}
                for cell in CELLS}
    return RunMeta(matrix_hash="m", git_branch="main", git_commit=f"{night:040x}",
                   packages=packages)


def _median(action: Callable[[], Any], tries: int = TRIES) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(tries):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def measure(folder: Path) -> dict[str, Any]:
    rng = random.Random(20261128)
    base = [rng.lognormvariate(-4, 1.2) for _ in range(TESTS)]
    base[FLAKY + 1] = 0.8  # the test that gets slower
    path = folder / "history.db"
    figures: dict[str, Any] = {"runs": DEFAULT_KEEP, "cells": len(CELLS), "tests": TESTS}
    started = time.perf_counter()
    with History.open(path) as history:
        for night in range(DEFAULT_KEEP):
            history.record(synthetic_run(night, rng, base), _meta(night))
        figures["fill_s"] = round(time.perf_counter() - started, 1)
        pending = [synthetic_run(DEFAULT_KEEP + i, rng, base) for i in range(TRIES)]
        timings = []
        for run in pending:
            started = time.perf_counter()
            recorded = history.record(run, _meta(DEFAULT_KEEP))
            timings.append(time.perf_counter() - started)
            assert recorded.pruned == 1, recorded
        figures["write_s"] = statistics.median(timings)
        figures["write_rows"] = recorded.tests
        last = pending[-1]
        figures["test_query_s"], one = _median(
            lambda: history.test_history("test_case_1234_"))
        figures["test_query_points"] = len(one.points)
        figures["test_query_50_s"], wide = _median(
            lambda: history.test_history("test_module_07.", max_tests=20))
        figures["test_query_50_points"] = len(wide.points)
        figures["baseline_s"], _ = _median(lambda: history.baseline(
            branch="main", matrix_hash="m", profile="nightly", before=last.run_id))
        # the packages the last runs were recorded with (_meta of DEFAULT_KEEP)
        last_packages = _meta(DEFAULT_KEEP).packages
        figures["judge_s"], judged = _median(
            lambda: judge(last, history, packages=last_packages), 3)
        figures["flaky_tests"] = len(judged.flaky)
        figures["verdicts"] = sorted({f"{v.verdict}: {v.test}" for v in judged.verdicts})
        figures["slowdowns_s"], slow = _median(lambda: slowdowns(last, history), 3)
        figures["slowdowns"] = [s.describe() for s in slow]
        figures["runs_table_s"], _ = _median(lambda: history.runs(last=20))
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        figures["result_rows"] = raw.execute("SELECT count(*) FROM result").fetchone()[0]
    raw.close()
    figures["size_mb"] = round(path.stat().st_size / 1e6, 1)
    figures["bytes_per_result"] = round(path.stat().st_size / figures["result_rows"], 1)
    return figures


def report(figures: dict[str, Any]) -> None:
    """The figures as ``make bench`` and this script print them."""
    print(f"history at the limit: {figures['runs']} runs x {figures['cells']} cells x "
          f"{figures['tests']} tests = {figures['result_rows']:,} results "
          f"(filled in {figures['fill_s']} s)")
    for key, label in (("write_s", "write one run (+ prune one)"),
                       ("test_query_s", "test history by substring (1 test)"),
                       ("test_query_50_s", "test history by substring (20 of 50 tests)"),
                       ("baseline_s", "--baseline auto lookup"),
                       ("judge_s", "flaky tests + verdicts"),
                       ("slowdowns_s", "slowdowns (cells + history)"),
                       ("runs_table_s", "last 20 runs")):
        target = TARGETS.get(key)
        note = f"  (target < {target} s)" if target else ""
        print(f"  {label:<45} {figures[key]:7.3f} s{note}")
    print(f"  {'database size':<45} {figures['size_mb']:7.1f} MB "
          f"({figures['bytes_per_result']} bytes per result)")
    print(f"found: {figures['flaky_tests']} flaky tests (12 made flaky); verdicts: "
          f"{'; '.join(figures['verdicts'])}")
    print("slowdowns: " + "; ".join(figures["slowdowns"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "reports" / "history-bench.json"))
    parser.add_argument("--folder", help="where the history is built (default: a temp dir)")
    args = parser.parse_args()
    if args.folder:
        figures = measure(Path(args.folder))
    else:
        with tempfile.TemporaryDirectory(prefix="history-bench-") as folder:
            figures = measure(Path(folder))
    figures["machine"] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                          "cpus": os.cpu_count()}
    report(figures)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(figures[k] < v for k, v in TARGETS.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
