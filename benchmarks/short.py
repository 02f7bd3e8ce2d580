"""The short suite: benchmarks/shortsuite (a tiny library with an ordinary pytest suite,
about 1 s of tests per cell) on the lab's slim interpreters, parallel 2, warm.

- ``short``: tagmatrix (default image mode) vs the hand-written loop (baseline.sh:
  per cell `docker build` + `docker run --rm` under xargs -P) vs the limit (container
  test time divided by the slots, or the longest cell);
- ``act``: tagmatrix vs nektos/act (benchmarks/act.py) on the same project and matrix,
  like-for-like (tagmatrix `build.mode: mount` with `setup: pip install -r
  requirements.txt`; act's job installs the requirements too: both copy or mount the
  checkout and pip-install in every cell) and out of the box (tagmatrix's image mode
  with its cached dependency layer; act as users write it).

Before any timing every tool runs once (which also warms the caches) and the per-cell
outcomes (verdict and pytest's counts) must agree; every timed round is checked again.
Tools take turns going first; figures are medians of the rounds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import docker

from benchmarks.act import Act
from benchmarks.common import (
    REPO,
    Outcomes,
    cells_file,
    copy_project,
    median,
    results_of,
    run_baseline,
    same_outcomes,
    tagmatrix,
    tagmatrix_outcomes,
    timed,
)

SOURCE = REPO / "benchmarks" / "shortsuite"
PARALLEL = 2  # the targets are stated for parallel 2
COMMAND = "python -m pytest -q"  # the project's pyproject.toml names its tests
MOUNT = "build:\n  mode: mount\n  setup: pip install -r requirements.txt\n"
# image mode: the library flow (the sdist built once, installed in each cell) with the
# test requirements in the cached dependency layer
INSTALL = "install:\n  requirements: [requirements.txt]\n"
CHANGED = "shortlib/lru.py"  # the library case edits this module (code, not tests)


def paired(ours: list[float], theirs: list[float]) -> float:
    """Median of the per-round ratios: a slow spell of the shared machine hits both tools
    of a round, so this moves less than the ratio of the medians."""
    return median(a / b for a, b in zip(ours, theirs, strict=True))


class ShortSuite:
    def __init__(self, work: Path, pythons: list[str], *, registry: str, prefix: str,
                 client: docker.DockerClient) -> None:
        self.work = work
        self.pythons = pythons
        self.registry = registry
        self.prefix = prefix
        self.client = client
        # One git copy for every tool (act needs a repository; its .dockerignore keeps
        # .git out of both tools' build contexts); its name makes tagmatrix's images
        # tagmatrix/<prefix>-short.
        self.project = copy_project(SOURCE, work / f"{prefix}-short", git=True)
        self.matrices = {"image": self.matrix("short-image.yaml", INSTALL),
                         "mount": self.matrix("short-mount.yaml", MOUNT)}
        self.cells = cells_file(work / "short-cells.txt", pythons, ["short"])
        self.baseline_runs = 0
        self.edits = 0

    def matrix(self, name: str, extra: str) -> Path:
        listed = ", ".join(f'"{p}"' for p in self.pythons)
        path = self.work / name
        path.write_text(f"project: {self.project}\nimage: {{registry: \"{self.registry}\"}}\n"
                        f"matrix:\n  python: [{listed}]\n  variant: [slim]\n"
                        f"test:\n  command: {COMMAND}\n  timeout: 300\n"
                        f"parallel: {PARALLEL}\n{extra}")
        return path

    def tagmatrix(self, mode: str) -> tuple[float, Outcomes, float]:
        """Wall seconds, outcomes and the limit of one tagmatrix run in ``mode``."""
        reports = self.work / f"short-tm-{mode}"  # kept across rounds: longest-first uses it
        seconds, done = timed(tagmatrix("run", "-q", "-f", str(self.matrices[mode]),
                                        "--reports", str(reports)))
        if done.returncode not in (0, 1) or not (reports / "results.json").is_file():
            raise SystemExit(f"tagmatrix ({mode}) failed ({done.returncode}): {done.stderr}")
        results = results_of(reports)
        runs = [float(c["run_s"]) for c in results["cells"]]
        return seconds, tagmatrix_outcomes(results), max(sum(runs) / PARALLEL, *runs)

    def baseline(self) -> tuple[float, Outcomes]:
        self.baseline_runs += 1
        seconds, outcomes = run_baseline(
            PARALLEL, self.project, registry=self.registry, cells=self.cells,
            out=self.work / f"short-baseline-{self.baseline_runs}",
            image=f"{self.prefix}-baseline", command=COMMAND, install="project")
        return seconds, {cell.split("-")[0]: o for cell, o in outcomes.items()}

    def reference(self) -> Outcomes:
        """tagmatrix's outcomes in image mode: every other tool must match them."""
        _, outcomes, _ = self.tagmatrix("image")
        failing = [p for p, o in outcomes.items() if not o.ok]
        if failing:
            raise SystemExit(f"short suite: cells {failing} fail under tagmatrix: {outcomes}")
        return outcomes

    def short(self, rounds: int) -> dict[str, Any]:
        """Nothing changes between runs: the check re-run on the same pull request."""
        return self.against_loop("short", rounds, change=False)

    def against_loop(self, case: str, rounds: int, *, change: bool) -> dict[str, Any]:
        """tagmatrix (image mode) and the loop, taking turns to go first; ``change``: the
        library's code changes before every timed run."""
        # the loop first: it writes its Dockerfile into the project (and its .dockerignore),
        # a change tagmatrix's first timed round would otherwise pay for
        warm = self.baseline()[1]
        expected = self.reference()
        same_outcomes(case, ("tagmatrix", expected), ("baseline", warm))
        ours, theirs, limits = [], [], []
        for i in range(rounds):
            for tool in (("tagmatrix", "baseline") if i % 2 == 0 else ("baseline", "tagmatrix")):
                if change:
                    self.change_code()
                if tool == "tagmatrix":
                    seconds, got, limit = self.tagmatrix("image")
                    ours.append(seconds)
                    limits.append(limit)
                else:
                    seconds, got = self.baseline()
                    theirs.append(seconds)
                same_outcomes(case, ("tagmatrix", expected), (tool, got))
            print(f"  {case} round {i + 1}: tagmatrix {ours[-1]:.2f} s, baseline "
                  f"{theirs[-1]:.2f} s, limit {limits[-1]:.2f} s", flush=True)
        tm, base, limit = median(ours), median(theirs), median(limits)
        return {"cells": len(self.pythons), "parallel": PARALLEL, "tagmatrix_s": tm,
                "baseline_s": base, "limit_s": limit, "vs_baseline": round(tm / base, 3),
                "vs_limit": round(tm / limit, 3), "rounds": rounds,
                "paired_vs_baseline": paired(ours, theirs),
                "outcomes": {p: str(o) for p, o in expected.items()},
                "changed": CHANGED if change else None,
                "samples": {"tagmatrix": ours, "baseline": theirs, "limit": limits}}

    def change_code(self) -> None:
        """A code-only change, as between two pushes of a pull request: one line of the
        library (not its tests, not its dependencies) differs; each tool then rebuilds
        what depends on it."""
        self.edits += 1
        path = self.project / CHANGED
        # unique to this run: an edit another run made too ("_EDIT = 3") is in the engine's
        # build cache (dangling layers outlive removed images), and both tools' rebuilds
        # became cache hits (the loop's 9.4 s measured 2.7 s)
        path.write_text(path.read_text() + f"\n_EDIT = '{self.edits}-{uuid.uuid4().hex}'\n")

    def library(self, rounds: int) -> dict[str, Any]:
        """Before every timed run the library's code changes: tagmatrix rebuilds the sdist
        and each cell's project layer, its dependency layer cached; the loop rebuilds
        each cell's `COPY . .` and `pip install --no-deps .`, its requirements layer
        cached. Both install the changed package in every cell."""
        return self.against_loop("library", rounds, change=True)

    def act(self, rounds: int) -> dict[str, Any]:
        act = Act(work=self.work, project=self.project, pythons=self.pythons,
                  registry=self.registry, parallel=PARALLEL, prefix=self.prefix,
                  command=COMMAND, client=self.client)
        try:
            expected = self.reference()
            same_outcomes("act", ("tagmatrix", expected),
                          ("tagmatrix (mount)", self.tagmatrix("mount")[1]),
                          ("act", act.run()[1]))
            samples: dict[str, list[float]] = {"mount": [], "image": [], "act": []}
            tools = list(samples)
            for i in range(rounds):
                for tool in tools[i % 3:] + tools[:i % 3]:  # each tool leads in turn
                    seconds, got = act.run() if tool == "act" else self.tagmatrix(tool)[:2]
                    samples[tool].append(seconds)
                    same_outcomes("act", ("tagmatrix", expected), (tool, got))
                print(f"  act round {i + 1}: tagmatrix mount {samples['mount'][-1]:.2f} s, "
                      f"image {samples['image'][-1]:.2f} s, act {samples['act'][-1]:.2f} s",
                      flush=True)
        finally:
            act.close()
        mount, image, act_s = (median(samples[k]) for k in ("mount", "image", "act"))
        return {"cells": len(self.pythons), "parallel": PARALLEL, "rounds": rounds,
                "act_version": act.version(),
                "like_for_like": {"tagmatrix_s": mount, "act_s": act_s,
                                  "vs_act": round(mount / act_s, 3),
                                  "paired_vs_act": paired(samples["mount"], samples["act"])},
                "out_of_the_box": {"tagmatrix_s": image, "act_s": act_s,
                                   "vs_act": round(image / act_s, 3),
                                   "paired_vs_act": paired(samples["image"], samples["act"])},
                "workflow_example": (self.work / f"{act.names[0]}.yml").read_text(),
                "samples": samples}
