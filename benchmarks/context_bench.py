"""Benchmark: reading a build context with many .dockerignore patterns, tagmatrix's
matcher (RE2, engine/ignore.py) against docker-py's ``exclude_paths``.

Each case is a tree of FILES files in 140 folders and PATTERNS patterns; kinds:

- ``nomatch``: ``**/nomatch<i>/**`` (the shape of the reported attack: nothing is
  excluded, every path meets every pattern);
- ``backtrack``: ``*a*a*a*a*a*a*b<i>``, against top-level names of 40 "a"s (Python's
  re backtracks on them; docker-py is only measured on 2 x 2 of this kind).

tagmatrix's figure is a whole snapshot without content (listing, matching, hashing:
what mount mode does), docker-py's is ``exclude_paths`` alone. Cases whose docker-py
time would be minutes are skipped for docker-py (``--docker-py-limit``, in
files x patterns). Prints a table and the peak RSS; not a test, a measurement:
``python benchmarks/context_bench.py``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from docker.utils.build import exclude_paths  # noqa: E402

from orchestrator.engine.context import ContextSnapshot  # noqa: E402
from orchestrator.jobs import ContextRules  # noqa: E402

CASES = [("nomatch", 100, 200), ("nomatch", 1000, 200), ("nomatch", 2000, 200),
         ("nomatch", 1000, 2000), ("nomatch", 1000, 20000), ("nomatch", 20000, 2000),
         ("backtrack", 2, 2), ("backtrack", 1000, 2000)]


def tree(root: Path, files: int, kind: str) -> None:
    for i in range(files):
        folder = root / f"d{i % 20}" / f"e{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "backtrack":  # at the top: a pattern's first * must reach it
            (root / ("a" * 40 + f"{i}")).write_text("x")
        else:
            (folder / f"f{i}.py").write_text("x")


def patterns(kind: str, count: int) -> list[str]:
    if kind == "backtrack":
        return [f"*a*a*a*a*a*a*b{i}" for i in range(count)]
    return [f"**/nomatch{i}/**" for i in range(count)]


def measure(kind: str, count: int, files: int, limit: int) -> tuple[float, float | None]:
    with tempfile.TemporaryDirectory(prefix="ctx-bench-") as folder:
        root = Path(folder)
        tree(root, files, kind)
        listed = patterns(kind, count)
        started = time.perf_counter()
        with ContextSnapshot(root, ContextRules(excludes=tuple(listed)), content=False):
            ours = time.perf_counter() - started
        theirs = None
        if count * files <= limit and (kind != "backtrack" or count * files <= 4):
            started = time.perf_counter()
            exclude_paths(str(root), list(listed))
            theirs = time.perf_counter() - started
    return ours, theirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docker-py-limit", type=int, default=400_000,
                        help="largest files x patterns measured with docker-py")
    args = parser.parse_args()
    print(f"{'kind':<10} {'patterns':>8} {'files':>6} {'tagmatrix':>10} {'docker-py':>10}")
    for kind, count, files in CASES:
        ours, theirs = measure(kind, count, files, args.docker_py_limit)
        shown = f"{theirs:9.2f}s" if theirs is not None else "   skipped"
        print(f"{kind:<10} {count:>8} {files:>6} {ours:9.2f}s {shown}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak RSS {peak} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
