"""Benchmark: load, expand and plan a 10,000-cell matrix (target: < 1 s).

Run with `make bench` (or `python benchmarks/plan_bench.py`). Prints the
median of several rounds; not a test, a measurement.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.plan import make_plan
from orchestrator.tags import Catalogue

ROUNDS = 5


def matrix_text() -> str:
    pythons = ["3.10", "3.11", "3.12", "3.13", "3.14"]
    variants = ["slim", "bookworm", "alpine", "slim-bookworm"]
    shards = [str(i) for i in range(25)]
    deps = ["min", "pinned", "latest", "pre", "dev", "nightly", "lts", "edge", "beta", "rc",
            "old", "new", "x", "y", "z", "w", "v", "u", "t", "s"]
    # 5 x 4 x 25 x 20 = 10,000 cells
    return json.dumps({"matrix": {"python": pythons, "variant": variants, "shard": shards,
                                  "deps": deps},
                       "test": {"command": "python -m pytest -q"}})


def median_plan_seconds() -> float:
    """Median seconds to load, expand and plan the 10,000-cell matrix."""
    return statistics.median(_timings()[0])


def _timings() -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.yaml"
        path.write_text(matrix_text())  # JSON is YAML
        (Path(tmp) / "requirements.txt").write_text("pytest\n")
        catalogue = Catalogue.builtin()
        timings = []
        cells = 0
        for _ in range(ROUNDS):
            start = time.perf_counter()
            config = load_config(path, catalogue=catalogue)
            plan = make_plan(config, catalogue)
            timings.append(time.perf_counter() - start)
            cells = len(plan.jobs)
    return timings, cells


def main() -> int:
    timings, cells = _timings()
    median = statistics.median(timings)
    print(f"plan of {cells} cells: median {median:.3f} s over {ROUNDS} rounds "
          f"(min {min(timings):.3f}, max {max(timings):.3f}); target < 1 s")
    return 0 if median < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
