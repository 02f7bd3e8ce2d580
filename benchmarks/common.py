"""What the bench cases share: timing a command, tagmatrix as a process, the
hand-written loop (baseline.sh), per-cell outcomes and the bench's own Docker objects."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parent.parent
BASELINE_SH = REPO / "benchmarks" / "baseline.sh"
# pytest's closing line: "== 49 passed, 4 skipped in 0.87s ==" (-q drops the "=")
SUMMARY = re.compile(r"^=*\s*(\d+ [a-z]+(?:, \d+ [a-z]+)*) in [\d.]+s\b", re.MULTILINE)
COUNT = re.compile(r"(\d+) ([a-z]+)")
# pytest says "error"/"errors"; tagmatrix's results.json says "errors"
KINDS = {"passed": "passed", "failed": "failed", "error": "errors", "errors": "errors",
         "skipped": "skipped"}


def timed(command: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    return time.monotonic() - started, done


def tagmatrix(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 3)


@dataclass(frozen=True)
class Outcome:
    """What a tool says about one cell: its verdict and pytest's counts."""

    ok: bool
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @classmethod
    def of_counts(cls, ok: bool, counts: Mapping[str, int]) -> Outcome:
        return cls(ok, **{k: int(counts.get(k, 0))
                          for k in ("passed", "failed", "errors", "skipped")})

    @classmethod
    def of_pytest(cls, ok: bool, output: str) -> Outcome:
        """From pytest's closing line in a cell's output (its last one, if several)."""
        lines = SUMMARY.findall(output)
        counts: dict[str, int] = {}
        for number, kind in COUNT.findall(lines[-1] if lines else ""):
            if kind in KINDS:
                counts[KINDS[kind]] = counts.get(KINDS[kind], 0) + int(number)
        return cls.of_counts(ok, counts)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in (("passed", self.passed),
                                                   ("failed", self.failed),
                                                   ("errors", self.errors),
                                                   ("skipped", self.skipped)) if n)
        return f"{'ok' if self.ok else 'FAILED'} ({counts or 'no tests'})"


Outcomes = dict[str, Outcome]


def tagmatrix_outcomes(results: Mapping[str, Any]) -> Outcomes:
    """Per python version, from results.json."""
    return {c["python"]: Outcome.of_counts(c["status"] == "passed", c.get("tests") or {})
            for c in results["cells"]}


def same_outcomes(case: str, reference: tuple[str, Outcomes], *others: tuple[str, Outcomes]
                  ) -> None:
    """Refuse to time tools that disagree on any cell (or that ran no test at all)."""
    name, expected = reference
    if not expected or any(o.passed == 0 for o in expected.values()):
        raise SystemExit(f"{case}: {name} ran no test in some cell: {expected}")
    for other, got in others:
        if got != expected:
            diff = "; ".join(f"{k}: {name} {expected.get(k)} vs {other} {got.get(k)}"
                             for k in sorted(set(expected) | set(got))
                             if expected.get(k) != got.get(k))
            raise SystemExit(f"{case}: {name} and {other} disagree: {diff}")


def cells_file(path: Path, pythons: Iterable[str], loads: Iterable[str]) -> Path:
    """baseline.sh's input: one "python variant load" per line."""
    loads = list(loads)
    path.write_text("".join(f"{p} slim {load}\n" for p in pythons for load in loads))
    return path


def run_baseline(parallel: int, project: Path, *, registry: str, cells: Path, out: Path,
                 image: str, command: str = "python -m pytest -q tests",
                 install: str = "") -> tuple[float, Outcomes]:
    """baseline.sh (per cell `docker build` + `docker run --rm` under xargs -P): wall
    seconds and the outcome of each cell, keyed by "python-variant-load"; ``install``
    "project" installs the checkout in each image (a library's loop)."""
    seconds, done = timed(["bash", str(BASELINE_SH), str(parallel), str(project), registry,
                           str(cells), str(out), image, command, install],
                          env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if done.returncode != 0:
        raise SystemExit(f"baseline.sh failed ({done.returncode}): {done.stderr}")
    outcomes: Outcomes = {}
    for line in (out / "exit-codes").read_text().splitlines():
        cell, code = line.split()
        outcomes[cell] = Outcome.of_pytest(
            code == "0", (out / f"{cell}.log").read_text(errors="replace"))
    return seconds, outcomes


def copy_project(source: Path, target: Path, *, git: bool = False) -> Path:
    """A scratch copy (its folder name becomes tagmatrix's image name); ``git``: a
    throwaway repository with one commit, as act needs."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__",
                                                                   ".pytest_cache"))
    if git:
        run = ["git", "-C", str(target), "-c", "user.name=bench", "-c",
               "user.email=bench@localhost"]
        for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
            subprocess.run([*run, *step], check=True, capture_output=True)
    return target


def results_of(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "results.json").read_text())
    return data


def remove_images(client: docker.DockerClient, prefixes: tuple[str, ...]) -> int:
    """Remove the images whose tags start with one of ``prefixes`` (the bench's own);
    untagged parents go with them. Returns how many tags were removed."""
    removed = 0
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefixes):
                client.images.remove(tag, force=True)
                removed += 1
    return removed
