"""tagmatrix against the hand-written alternative and the machine's limit (make bench).

Side by side in one run, same parallelism, on the lab:

- matrix: the lab's interpreters x a `load` axis of 3 values (>= 12 cells) on
  benchmarks/project (a real pytest suite, 1.5-4.5 s per cell);
- (a) tagmatrix; (b) benchmarks/baseline.sh: per cell `docker build` then
  `docker run --rm` under `xargs -P N`; (c) the limit: total container test
  time divided by the slots, or the longest cell if larger;
- cold rounds (the project's build cache removed before each tool) and warm
  rounds (nothing changed); the tools alternate who goes first;
- plan of 10,000 cells; log throughput of a 1 GiB cell and tagmatrix's peak
  RSS; fixed overhead per cell (cells whose test is `true`).

Prints a table of medians and writes reports/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.plan_bench import median_plan_seconds  # noqa: E402
from tests.integration.conftest import REGISTRY, slim_minors  # noqa: E402

PROJECT = REPO / "benchmarks" / "project"
LOADS = ("small", "medium", "large")
TARGETS = {"warm_vs_baseline": 0.9, "warm_vs_limit": 1.15, "cold_vs_baseline": 0.8,
           "overhead_s": 0.35, "plan_s": 1.0, "log_mb_s": 100.0, "log_rss_mb": 150.0}


def timed(command: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    return time.monotonic() - started, done


def tagmatrix(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def write_matrix(path: Path, pythons: list[str], *, parallel: int, loads: tuple[str, ...] = LOADS,
                 command: str = "python -m pytest -q tests", extra: str = "") -> Path:
    listed = ", ".join(f'"{p}"' for p in pythons)
    path.write_text(
        f"project: {PROJECT}\nimage: {{registry: \"{REGISTRY}\"}}\n"
        f"matrix:\n  python: [{listed}]\n  variant: [slim]\n  load: [{', '.join(loads)}]\n"
        f"test:\n  command: {json.dumps(command)}\n  timeout: 300\n"
        f"parallel: {parallel}\n{extra}")
    return path


def purge(client: docker.DockerClient) -> None:
    """Drop the project's build cache: the images both tools built, and their layers."""
    for image in client.images.list():
        if any(t.startswith(("bench-baseline:", "tagmatrix/project:")) for t in image.tags):
            for tag in image.tags:
                client.images.remove(tag, force=True)
    client.images.prune(filters={"dangling": True})


class Bench:
    def __init__(self, work: Path, pythons: list[str], parallel: int) -> None:
        self.work = work
        self.pythons = pythons
        self.parallel = parallel
        self.matrix = write_matrix(work / "matrix.yaml", pythons, parallel=parallel)
        self.cells = work / "cells.txt"
        self.cells.write_text("".join(f"{p} slim {load}\n" for p in pythons for load in LOADS))
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
        out = self.work / f"baseline-{self.round}"
        seconds, done = timed(["bash", str(REPO / "benchmarks" / "baseline.sh"),
                               str(self.parallel), str(PROJECT), REGISTRY, str(self.cells),
                               str(out)], env={**os.environ, "DOCKER_BUILDKIT": "0"})
        codes = (out / "exit-codes").read_text().split()
        if done.returncode != 0 or any(c != "0" for c in codes[1::2]):
            raise SystemExit(f"baseline failed: {done.stderr} {codes}")
        return seconds

    def rounds(self, count: int, *, cold: bool) -> dict[str, Any]:
        ours, theirs, limits = [], [], []
        for i in range(count):
            order = ["tagmatrix", "baseline"] if i % 2 == 0 else ["baseline", "tagmatrix"]
            for tool in order:
                if cold:
                    purge(self.client)
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
            path = write_matrix(self.work / f"true-{count}.yaml", self.pythons[:1], parallel=1,
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
        path = write_matrix(self.work / "flood.yaml", self.pythons[:1], parallel=1,
                            loads=("flood",), extra="logs: {max_bytes: 20000000}\n")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=str(REPO / "reports" / "bench.json"))
    args = parser.parse_args()
    pythons = slim_minors()
    info = {"cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                         * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "docker": docker.from_env().version().get("Version"),
            "python": platform.python_version(), "cells": len(pythons) * len(LOADS),
            "parallel": args.parallel}
    print(f"machine: {info['cores']} cores, {info['memory_gib']} GiB, Docker {info['docker']}; "
          f"{info['cells']} cells, parallel {args.parallel}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), pythons, args.parallel)
        print("flood (1 GiB of output) ...", flush=True)
        flood = bench.flood()  # first: ru_maxrss of children only grows
        bench.run_tagmatrix()  # warm-up: base images pulled, durations known
        print("warm rounds ...", flush=True)
        warm = bench.rounds(args.rounds, cold=False)
        print("cold rounds ...", flush=True)
        cold = bench.rounds(args.rounds, cold=True)
        print("fixed overhead per cell ...", flush=True)
        overhead = bench.overhead()
    plan = median_plan_seconds()
    figures = {"warm_vs_baseline": warm["vs_baseline"], "warm_vs_limit": warm["vs_limit"],
               "cold_vs_baseline": cold["vs_baseline"], "overhead_s": overhead["per_cell_s"],
               "plan_s": plan, "log_mb_s": flood["mb_s"], "log_rss_mb": flood["peak_rss_mb"]}
    met = {k: (v is not None and (v >= TARGETS[k] if k == "log_mb_s" else v <= TARGETS[k]))
           for k, v in figures.items()}
    print(f"\n{'':26}{'tagmatrix':>11}{'baseline':>10}{'limit':>9}{'tm/base':>9}{'tm/limit':>10}")
    for name, row in (("warm (median)", warm), ("cold (median)", cold)):
        print(f"{name:26}{row['tagmatrix_s']:>10.1f}s{row['baseline_s']:>9.1f}s"
              f"{row['limit_s']:>8.1f}s{row['vs_baseline']:>9.2f}{row['vs_limit']:>10.2f}")
    print(f"fixed overhead per cell   {overhead['per_cell_s']:.3f} s "
          f"(docker run --rm ... true: {overhead['docker_run_rm_true_s']:.3f} s)")
    print(f"plan of 10,000 cells      {plan:.3f} s")
    print(f"log throughput            {flood['mb_s']:.0f} MB/s, peak RSS "
          f"{flood['peak_rss_mb']} MB")
    print("targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'} ({figures[k]} vs "
                                  f"{TARGETS[k]})" for k, ok in met.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": info, "warm": warm, "cold": cold,
                                          "overhead": overhead, "plan_10k_s": plan,
                                          "flood": flood, "targets": TARGETS, "met": met},
                                         indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
