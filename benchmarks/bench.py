"""tagmatrix against the hand-written alternative, act and the machine's limit (make bench).

Side by side in one run, same parallelism, on the lab. Cases (``--only a,b``):

- warm, cold: the lab's interpreters x a `load` axis of 3 values (>= 12 cells) on
  benchmarks/project (a pytest suite that computes and waits, 1.5-4.5 s per cell):
  (a) tagmatrix; (b) benchmarks/baseline.sh: per cell `docker build` then
  `docker run --rm` under `xargs -P N`; (c) the limit: total container test
  time divided by the slots, or the longest cell if larger; cold rounds remove
  the project's build cache before each tool; the tools alternate who goes first;
- flood: log throughput of a 1 GiB cell and tagmatrix's peak RSS;
- overhead: fixed cost per cell (cells whose test is `true`);
- plan: plan of 10,000 cells;
- short, act: a small library's ~1 s suite on 4 cells, parallel 2, against the
  shell loop and against nektos/act (benchmarks/short.py, benchmarks/act.py);
- library: the same library with its code changed before every run (a new push to a
  pull request): tagmatrix rebuilds its sdist, the loop its `COPY . .` and install;
- startup: `tagmatrix --version`, `plan`, `validate` as processes, and the CLI's
  largest imports (benchmarks/startup.py);
- history: the run history at its retention limit, 200 runs x 24 cells x 2,000 tests of
  synthetic data: writing a run, `history --test`, the analyses, the file's size
  (benchmarks/history_bench.py; no Docker).

Docker objects carry ``--prefix`` (images <prefix>-baseline:*, tagmatrix/<prefix>-*,
act's <prefix>-* workflows) and are removed at the end unless --keep-images.
Prints a table of medians and writes reports/bench.json: machine info, and every case
with its measured_at; a partial run (--only) keeps the other cases of the file as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import history_bench, startup  # noqa: E402
from benchmarks.common import (  # noqa: E402
    cells_file,
    copy_project,
    remove_images,
    run_baseline,
    tagmatrix,
    timed,
)
from benchmarks.plan_bench import median_plan_seconds  # noqa: E402
from benchmarks.short import ShortSuite  # noqa: E402
from tests.integration.conftest import REGISTRY, slim_minors  # noqa: E402

PROJECT = REPO / "benchmarks" / "project"
LOADS = ("small", "medium", "large")
# Run order: flood first (ru_maxrss of children only grows); the rest in any order.
CASES = ("flood", "warm", "cold", "overhead", "plan", "short", "library", "act", "startup",
         "history")
DOCKER_CASES = frozenset(CASES) - {"plan", "startup", "history"}
TARGETS = {"warm_vs_baseline": 0.9, "warm_vs_limit": 1.10, "cold_vs_baseline": 0.8,
           "overhead_s": 0.35, "plan_s": 1.0, "log_mb_s": 100.0, "log_rss_mb": 150.0,
           "short_vs_baseline": 0.9, "library_vs_baseline": 0.8, "act_like_for_like": 0.7,
           "startup_version_s": 0.12,
           "startup_plan_s": 0.12, "startup_validate_s": 0.12, "history_write_s": 1.0,
           "history_test_query_s": 1.0}
AT_LEAST = frozenset({"log_mb_s"})  # every other target is an upper bound


def write_matrix(path: Path, project: Path, pythons: list[str], *, parallel: int,
                 loads: tuple[str, ...] = LOADS, command: str = "python -m pytest -q tests",
                 extra: str = "") -> Path:
    listed = ", ".join(f'"{p}"' for p in pythons)
    path.write_text(
        f"project: {project}\nimage: {{registry: \"{REGISTRY}\"}}\n"
        f"matrix:\n  python: [{listed}]\n  variant: [slim]\n  load: [{', '.join(loads)}]\n"
        f"test:\n  command: {json.dumps(command)}\n  timeout: 300\n"
        f"parallel: {parallel}\n{extra}")
    return path


def own_images(prefix: str) -> tuple[str, ...]:
    """Tag prefixes of the images the bench builds (baseline.sh's and tagmatrix's)."""
    return (f"{prefix}-baseline:", f"tagmatrix/{prefix}-")


def purge(client: docker.DockerClient, prefix: str) -> None:
    """Drop the 12-cell project's build cache: the images both tools built, and their layers."""
    remove_images(client, (f"{prefix}-baseline:", f"tagmatrix/{prefix}-project:"))
    client.images.prune(filters={"dangling": True})


class Bench:
    def __init__(self, work: Path, pythons: list[str], parallel: int, prefix: str) -> None:
        self.work = work
        self.pythons = pythons
        self.parallel = parallel
        self.prefix = prefix
        # a copy named <prefix>-project: tagmatrix's images are tagmatrix/<prefix>-project
        self.project = copy_project(PROJECT, work / f"{prefix}-project")
        self.matrix = write_matrix(work / "matrix.yaml", self.project, pythons,
                                   parallel=parallel)
        self.cells = cells_file(work / "cells.txt", pythons, LOADS)
        self.client = docker.from_env()
        self.round = 0

    def run_tagmatrix(self) -> tuple[float, dict[str, Any]]:
        reports = self.work / "tm-reports"  # kept across rounds: longest-first uses it
        seconds, done = timed(tagmatrix("run", "-q", "-f", str(self.matrix), "--reports",
                                        str(reports)))
        results = json.loads((reports / "results.json").read_text())
        bad = [c["id"] for c in results["cells"] if c["status"] != "passed"]
        if done.returncode != 0 or bad:
            raise SystemExit(f"tagmatrix run failed ({done.returncode}, {bad}): {done.stderr}")
        return seconds, results

    def run_baseline(self) -> float:
        self.round += 1
        seconds, outcomes = run_baseline(self.parallel, self.project, registry=REGISTRY,
                                         cells=self.cells, out=self.work / f"baseline-{self.round}",
                                         image=f"{self.prefix}-baseline")
        failing = {cell: str(o) for cell, o in outcomes.items() if not o.ok}
        if failing:
            raise SystemExit(f"baseline failed: {failing}")
        return seconds

    def rounds(self, count: int, *, cold: bool) -> dict[str, Any]:
        ours, theirs, limits = [], [], []
        for i in range(count):
            order = ["tagmatrix", "baseline"] if i % 2 == 0 else ["baseline", "tagmatrix"]
            for tool in order:
                if cold:
                    purge(self.client, self.prefix)
                if tool == "tagmatrix":
                    seconds, results = self.run_tagmatrix()
                    ours.append(seconds)
                    runs = [c["run_s"] for c in results["cells"]]
                    limits.append(max(sum(runs) / self.parallel, *runs))
                else:
                    theirs.append(self.run_baseline())
            print(f"  {'cold' if cold else 'warm'} round {i + 1}: tagmatrix {ours[-1]:.1f} s, "
                  f"baseline {theirs[-1]:.1f} s, limit {limits[-1]:.1f} s", flush=True)
        tm, base, limit = (statistics.median(x) for x in (ours, theirs, limits))
        return {"tagmatrix_s": round(tm, 2), "baseline_s": round(base, 2),
                "limit_s": round(limit, 2), "vs_baseline": round(tm / base, 3),
                "vs_limit": round(tm / limit, 3), "rounds": count,
                "samples": {"tagmatrix": ours, "baseline": theirs, "limit": limits}}

    def overhead(self) -> dict[str, Any]:
        """Per-cell cost of tagmatrix itself: cells whose test is `true`, one at a time;
        the slope between 10 and 20 cells removes start-up and reporting."""
        walls = {}
        for count in (10, 20):
            path = write_matrix(self.work / f"true-{count}.yaml", self.project,
                                self.pythons[:1], parallel=1,
                                loads=tuple(f"n{i}" for i in range(count)), command="true")
            walls[count], done = timed(tagmatrix("run", "-q", "-f", str(path), "--reports",
                                                 str(self.work / f"true-{count}")))
            if done.returncode != 0:
                raise SystemExit(f"overhead run failed: {done.stderr}")
        per_cell = (walls[20] - walls[10]) / 10
        image = f"{REGISTRY}/library/python:{self.pythons[0]}-slim"
        cli, _ = timed(["bash", "-c", f"for i in $(seq 10); do docker run --rm {image} true; "
                                      "done"])
        return {"per_cell_s": round(per_cell, 3), "docker_run_rm_true_s": round(cli / 10, 3),
                "walls": walls}

    def flood(self) -> dict[str, Any]:
        code = ("import sys\nb = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"
                "for _ in range(1 << 20):\n    w(b)\n")
        path = write_matrix(self.work / "flood.yaml", self.project, self.pythons[:1],
                            parallel=1, loads=("flood",),
                            extra="logs: {max_bytes: 20000000}\n")
        text = path.read_text().replace('command: "python -m pytest -q tests"',
                                        f"command: {json.dumps(['python', '-c', code])}")
        path.write_text(text)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        seconds, done = timed(tagmatrix("run", "-q", "-f", str(path), "--reports",
                                        str(self.work / "flood")))
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            raise SystemExit(f"flood run failed: {done.stderr}")
        cell = json.loads((self.work / "flood" / "results.json").read_text())["cells"][0]
        return {"bytes": 1 << 30, "run_s": cell["run_s"], "wall_s": round(seconds, 2),
                "mb_s": round((1 << 30) / 1e6 / cell["run_s"], 1),
                # ru_maxrss of children is the largest child so far: valid only if it grew
                "peak_rss_mb": round(peak / 1024, 1) if peak > before else None}


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(CASES)
    asked = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in asked if c not in CASES]
    if unknown:
        raise SystemExit(f"bench: unknown case(s) {', '.join(unknown)} (cases: {', '.join(CASES)})")
    return [c for c in CASES if c in asked]


def machine(cases: list[str], parallel: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "parallel": parallel,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    if DOCKER_CASES & set(cases):
        info["docker"] = docker.from_env().version().get("Version")
    return info


def run_cases(cases: list[str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Each asked case's figures, in CASES order."""
    out: dict[str, Any] = {}
    pythons = slim_minors() if DOCKER_CASES & set(cases) else []
    rounds = args.rounds
    if {"flood", "warm", "cold", "overhead"} & set(cases):
        bench = Bench(work, pythons, args.parallel, args.prefix)
        if "flood" in cases:
            print("flood (1 GiB of output) ...", flush=True)
            out["flood"] = bench.flood()
        if {"warm", "cold"} & set(cases):
            bench.run_tagmatrix()  # warm-up: base images pulled, durations known
        for kind in ("warm", "cold"):
            if kind in cases:
                print(f"{kind} rounds ({len(pythons) * len(LOADS)} cells) ...", flush=True)
                out[kind] = bench.rounds(rounds or 3, cold=kind == "cold")
        if "overhead" in cases:
            print("fixed overhead per cell ...", flush=True)
            out["overhead"] = bench.overhead()
    if "plan" in cases:
        out["plan"] = {"cells": 10_000, "median_s": round(median_plan_seconds(), 3)}
    if {"short", "library", "act"} & set(cases):
        suite = ShortSuite(work, pythons, registry=REGISTRY, prefix=args.prefix,
                           client=docker.from_env())
        if "short" in cases:
            print(f"short suite ({len(pythons)} cells, parallel 2) vs the shell loop ...",
                  flush=True)
            out["short"] = suite.short(rounds or 5)
        if "library" in cases:
            print(f"library, code changed before each run ({len(pythons)} cells, parallel 2) "
                  "vs the shell loop ...", flush=True)
            out["library"] = suite.library(rounds or 5)
        if "act" in cases:
            print(f"short suite ({len(pythons)} cells, parallel 2) vs act ...", flush=True)
            out["act"] = suite.act(rounds or 5)
    if "startup" in cases:
        print(f"start-up ({startup.RUNS} runs of each command) ...", flush=True)
        out["startup"] = startup.measure()
    if "history" in cases:
        print("history at its retention limit (200 runs x 24 cells x 2,000 tests) ...",
              flush=True)
        folder = work / "history"
        folder.mkdir()
        out["history"] = history_bench.measure(folder)
    return out


def figures_of(out: dict[str, Any]) -> dict[str, float | None]:
    """The figures that have a target, for the cases that ran."""
    figures: dict[str, float | None] = {}
    if "warm" in out:
        figures |= {"warm_vs_baseline": out["warm"]["vs_baseline"],
                    "warm_vs_limit": out["warm"]["vs_limit"]}
    if "cold" in out:
        figures["cold_vs_baseline"] = out["cold"]["vs_baseline"]
    if "overhead" in out:
        figures["overhead_s"] = out["overhead"]["per_cell_s"]
    if "plan" in out:
        figures["plan_s"] = out["plan"]["median_s"]
    if "flood" in out:
        figures |= {"log_mb_s": out["flood"]["mb_s"], "log_rss_mb": out["flood"]["peak_rss_mb"]}
    if "short" in out:
        figures["short_vs_baseline"] = out["short"]["vs_baseline"]
    if "library" in out:
        figures["library_vs_baseline"] = out["library"]["vs_baseline"]
    if "act" in out:
        figures["act_like_for_like"] = out["act"]["like_for_like"]["vs_act"]
    if "startup" in out:
        for name, row in out["startup"]["commands"].items():
            figures[f"startup_{name}_s"] = row["median_s"]
    if "history" in out:
        figures |= {"history_write_s": round(out["history"]["write_s"], 3),
                    "history_test_query_s": round(out["history"]["test_query_s"], 3)}
    return figures


def report(out: dict[str, Any]) -> None:
    rows = [(name, out[key]) for name, key in (("warm (12 cells)", "warm"),
                                               ("cold (12 cells)", "cold"),
                                               ("short (4 cells, warm)", "short"),
                                               ("library, code changed", "library"))
            if key in out]
    if rows:
        print(f"\n{'':26}{'tagmatrix':>11}{'baseline':>10}{'limit':>9}{'tm/base':>9}"
              f"{'tm/limit':>10}")
    for name, row in rows:
        paired = f"  (per round: {row['paired_vs_baseline']:.2f})" if "paired_vs_baseline" in row \
            else ""
        print(f"{name:26}{row['tagmatrix_s']:>10.2f}s{row['baseline_s']:>9.2f}s"
              f"{row['limit_s']:>8.2f}s{row['vs_baseline']:>9.2f}{row['vs_limit']:>10.2f}{paired}")
    if "act" in out:
        for name in ("like_for_like", "out_of_the_box"):
            row = out["act"][name]
            print(f"vs act, {name.replace('_', ' '):18}tagmatrix {row['tagmatrix_s']:.2f} s, "
                  f"act {row['act_s']:.2f} s: {row['vs_act']:.2f} (per round: "
                  f"{row['paired_vs_act']:.2f})")
    if "overhead" in out:
        print(f"fixed overhead per cell   {out['overhead']['per_cell_s']:.3f} s "
              f"(docker run --rm ... true: {out['overhead']['docker_run_rm_true_s']:.3f} s)")
    if "plan" in out:
        print(f"plan of 10,000 cells      {out['plan']['median_s']:.3f} s")
    if "flood" in out:
        print(f"log throughput            {out['flood']['mb_s']:.0f} MB/s, peak RSS "
              f"{out['flood']['peak_rss_mb']} MB")
    if "startup" in out:
        for row in out["startup"]["commands"].values():
            print(f"{row['command']:36}{row['median_s']:.3f} s median (min {row['min_s']:.3f} s)")
        print(f"{'python -c pass (the floor)':36}{out['startup']['python_c_pass_s']:.3f} s median")
        print("largest imports of orchestrator.cli (cumulative): " + ", ".join(
            f"{i['module']} {i['cumulative_ms']} ms" for i in out["startup"]["imports"]))
    if "history" in out:
        history_bench.report(out["history"])


def meets(figures: dict[str, float | None]) -> dict[str, bool]:
    return {k: v is not None and (v >= TARGETS[k] if k in AT_LEAST else v <= TARGETS[k])
            for k, v in figures.items()}


def earlier(path: Path, cases: list[str]) -> dict[str, Any]:
    """The cases a partial run (--only) did not measure, as the last run that did left
    them in ``path`` (each keeps its own measured_at)."""
    if set(cases) == set(CASES) or not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return {}
    return {c: data[c] for c in CASES if c not in cases and isinstance(data.get(c), dict)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="CASES",
                        help=f"comma-separated cases to run (default: all of {','.join(CASES)})")
    parser.add_argument("--rounds", type=int,
                        help="rounds per timed case (default: 3 for warm/cold, 5 for short/act)")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2,
                        help="parallelism of the 12-cell cases (short and act use 2)")
    parser.add_argument("--prefix", default="bench",
                        help="prefix of the Docker objects the bench creates (default: bench)")
    parser.add_argument("--keep-images", action="store_true",
                        help="keep the images the bench built (warm caches for the next run)")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench.json"))
    args = parser.parse_args()
    cases = parse_only(args.only)
    info = machine(cases, args.parallel)
    print(f"machine: {info['cores']} cores, {info['memory_gib']} GiB, Docker "
          f"{info.get('docker', '-')}, load {info['loadavg_start']}; cases: {', '.join(cases)}",
          flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{args.prefix}-") as tmp:
            out = run_cases(cases, args, Path(tmp))
    finally:
        if DOCKER_CASES & set(cases) and not args.keep_images:
            remove_images(docker.from_env(), own_images(args.prefix))
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "loadavg": [info["loadavg_start"], info["loadavg_end"]]}
    out = {case: {**figures, **stamp} for case, figures in out.items()}
    report(out)
    now = figures_of(out)
    print("targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'} ({now[k]} vs {TARGETS[k]})"
                                  for k, ok in meets(now).items()))
    out = earlier(Path(args.out), cases) | out
    figures = figures_of(out)
    met = meets(figures)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": info, "this_run": cases, **out,
                                          "targets": {k: TARGETS[k] for k in figures},
                                          "figures": figures, "met": met}, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
