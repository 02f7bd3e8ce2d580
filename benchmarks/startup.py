"""Start-up: wall time of the commands a user types most, as processes, on the
repository's own matrix.yaml (target: <= 0.12 s each), and what importing the CLI costs.

    tagmatrix --version | plan -f matrix.yaml | validate -f matrix.yaml

The three commands take turns (so a burst of load hits all of them); medians of RUNS.
`python -X importtime -c "import orchestrator.cli"` runs IMPORT_RUNS times; the ten
largest cumulative imports are reported as per-module medians (from its lines
"import time: SELF_US | CUMULATIVE_US | <two spaces per level>module").
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, median, timed

RUNS = 20
IMPORT_RUNS = 5
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def command() -> list[str]:
    """The console script users run (the venv's), else the module."""
    script = Path(sys.executable).parent / "tagmatrix"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "orchestrator"]


def commands() -> dict[str, list[str]]:
    matrix = str(REPO / "matrix.yaml")
    return {"version": ["--version"], "plan": ["plan", "-f", matrix],
            "validate": ["validate", "-f", matrix]}


def floor(runs: int) -> float:
    """The interpreter's own start-up in this venv (site, .pth files): no command is
    faster than this."""
    return median(timed([sys.executable, "-c", "pass"])[0] for _ in range(runs))


def wall_times(runs: int = RUNS) -> dict[str, dict[str, Any]]:
    base = command()
    samples: dict[str, list[float]] = defaultdict(list)
    for args in commands().values():  # once untimed: fails loudly, warms the page cache
        _, done = timed([*base, *args], cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"startup: tagmatrix {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.strip()}")
    for _ in range(runs):
        for name, args in commands().items():
            seconds, _ = timed([*base, *args], cwd=REPO)
            samples[name].append(seconds)
    return {name: {"command": "tagmatrix " + " ".join(a.replace(str(REPO) + "/", "")
                                                    for a in commands()[name]),
                   "median_s": median(samples[name]), "min_s": round(min(samples[name]), 3),
                   "runs": runs}
            for name in commands()}


def top_imports(runs: int = IMPORT_RUNS, count: int = 10) -> list[dict[str, Any]]:
    """The ``count`` largest cumulative import times of ``import orchestrator.cli``."""
    cumulative: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    for _ in range(runs):
        _, done = timed([sys.executable, "-X", "importtime", "-c", "import orchestrator.cli"],
                        cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"startup: import orchestrator.cli failed: {done.stderr[-500:]}")
        for line in done.stderr.splitlines():
            found = IMPORT_LINE.match(line)
            if found:
                cumulative[found[4]].append(int(found[2]))
                depth[found[4]] = len(found[3]) // 2
    ranked = sorted(cumulative, key=lambda m: statistics.median(cumulative[m]), reverse=True)
    return [{"module": m, "cumulative_ms": round(statistics.median(cumulative[m]) / 1000, 1),
             "depth": depth[m]} for m in ranked[:count]]


def measure(runs: int = RUNS) -> dict[str, Any]:
    return {"commands": wall_times(runs), "python_c_pass_s": floor(runs),
            "imports": top_imports()}
