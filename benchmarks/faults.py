"""Fault scenarios in a row, on the real engine: nothing lost, nothing left behind.

    python benchmarks/faults.py [--disruptive]     (make faults)

Each scenario runs tagmatrix as a process against the lab, injects a fault,
and counts: cells planned vs cells reported (results lost, must be 0), the
containers of the scenario's tagmatrix processes afterwards (leftovers, must be
0; other runs on the shared engine do not count), and the cleanup time (from
the fault to the last container gone). --disruptive also stops the engine
mid-run (and starts it again with lab/up). Prints a table and writes
reports/faults.json. The images the scenarios build are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.conftest import (  # noqa: E402 - after the path is set
    REGISTRY,
    Owner,
    lab_matrix,
    make_project,
    managed_containers,
    slim_minors,
    wait_running,
)
from tests.integration.flaky_registry import FlakyRegistry  # noqa: E402
from tests.integration.workspace import Workspace, remove_images  # noqa: E402

SLEEP = {"test_sleep.py": "import time\n\ndef test_sleep():\n    time.sleep(100000)\n"}
OK = {"test_ok.py": "def test_ok():\n    pass\n"}


@dataclass
class Scenario:
    name: str
    cells: int = 0
    reported: int = 0
    leftovers: int = 0
    cleanup_s: float = 0.0
    exit_code: int | None = None
    expected_exit: int = 0
    statuses: str = ""

    @property
    def lost(self) -> int:
        return self.cells - self.reported

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.leftovers == 0 and self.exit_code == self.expected_exit


def tagmatrix(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def leftovers(client: docker.DockerClient, owners: list[Owner]) -> set[str]:
    """The containers of these tagmatrix processes (not those of other runs)."""
    return {cid for owner in owners for cid in managed_containers(client, owner)}


def wait_gone(client: docker.DockerClient, owners: list[Owner], since: float,
              limit: float = 60) -> float:
    while leftovers(client, owners) and time.monotonic() - since < limit:
        time.sleep(0.05)
    return time.monotonic() - since


def finish(scenario: Scenario, reports: Path, client: docker.DockerClient,
           owners: list[Owner]) -> Scenario:
    results = reports / "results.json"
    if results.is_file():
        cells = json.loads(results.read_text())["cells"]
        scenario.reported = len(cells)
        scenario.statuses = ",".join(sorted({c["status"] for c in cells}))
    scenario.leftovers = len(leftovers(client, owners))
    return scenario


class Runner:
    def __init__(self, workspace: Workspace, minors: list[str]) -> None:
        self.workspace = workspace
        self.client = workspace.client
        self.minors = minors
        self.folders: dict[str, Path] = {}

    def folder(self, name: str) -> Path:
        """The scenario's folder, named uniquely (its images are removed at the end)."""
        if name not in self.folders:
            self.folders[name] = self.workspace.folder(name)
        return self.folders[name]

    def project(self, name: str, tests: dict[str, str], **matrix: object) -> Path:
        return make_project(self.folder(name), lab_matrix(self.minors[:2], **matrix), tests)  # type: ignore[arg-type]

    def run_to_end(self, name: str, path: Path, cells: int, expected: int,
                   env: dict[str, str] | None = None) -> Scenario:
        reports = path.parent / "reports"
        process = tagmatrix("run", "-f", str(path), "--reports", str(reports), env=env)
        owner = Owner.of(process)
        process.communicate(timeout=900)
        scenario = Scenario(name, cells=cells, exit_code=process.returncode,
                            expected_exit=expected)
        return finish(scenario, reports, self.client, [owner])

    def timeout(self) -> Scenario:
        return self.run_to_end("hung test (timeout 3 s)", self.project("timeout", SLEEP,
                                                                        timeout=3), 2, 1)

    def signal(self, signum: int, expected: int) -> Scenario:
        name = f"{signal.Signals(signum).name} mid-run"
        path = self.project(name.split(maxsplit=1)[0], SLEEP)
        reports = path.parent / "reports"
        process = tagmatrix("run", "-f", str(path), "--reports", str(reports))
        owner = Owner.of(process)
        wait_running(self.client, 2, process)
        sent = time.monotonic()
        process.send_signal(signum)
        process.communicate(timeout=60)
        scenario = Scenario(name, cells=2, exit_code=process.returncode, expected_exit=expected,
                            cleanup_s=time.monotonic() - sent)
        return finish(scenario, reports, self.client, [owner])

    def kill9(self) -> Scenario:
        path = self.project("kill9", SLEEP)
        reports = path.parent / "reports"
        process = tagmatrix("run", "-f", str(path), "--reports", str(reports))
        owner = Owner.of(process)
        wait_running(self.client, 2, process)
        process.kill()
        process.communicate(timeout=60)
        killed = time.monotonic()
        clean = tagmatrix("clean")
        clean.communicate(timeout=120)
        scenario = Scenario("kill -9, then tagmatrix clean", cells=2, reported=2,
                            exit_code=clean.returncode, expected_exit=0,
                            cleanup_s=wait_gone(self.client, [owner], killed),
                            statuses="(no reports)")
        scenario.leftovers = len(leftovers(self.client, [owner]))
        return scenario

    def oom(self) -> Scenario:
        hog = {"test_hog.py": "def test_hog():\n    assert bytearray(400 * 2**20)\n"}
        return self.run_to_end("OOM at 64 MiB", self.project(
            "oom", hog, extra="limits: {memory: 64m}\n"), 2, 1)

    def hostile(self) -> Scenario:
        bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">'
                          for p, n in zip("abcdefgh", "bcdefghi", strict=True))
                + ']><testsuite><testcase classname="w" name="&i;"/></testsuite>')
        command = ["python", "-c", f"open('/tmp/out.xml', 'w').write({bomb!r})"]
        path = self.project("hostile", {}, command=command, test_extra="junit: /tmp/out.xml")
        return self.run_to_end("billion-laughs results", path, 2, 1)

    def flood(self) -> Scenario:
        code = ("import sys\nb = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"
                "for _ in range(1 << 20):\n    w(b)\n")
        path = make_project(self.folder("flood"), lab_matrix(
            self.minors[:1], command=["python", "-c", code],
            extra="logs: {max_bytes: 20000000}\n"), {})
        return self.run_to_end("1 GiB of output", path, 1, 0)

    def rate_limit(self) -> Scenario:
        with FlakyRegistry("127.0.0.1:5000", fail_first=2) as front:
            path = make_project(self.folder("ratelimit"), lab_matrix(self.minors[:1]).replace(
                REGISTRY, front.address), OK)
            try:
                return self.run_to_end("registry answers 429 once", path, 1, 0)
            finally:  # the base image under the front's name (its port is ours)
                remove_images(self.client, lambda repository: repository.startswith(
                    f"{front.address}/"))

    def concurrent(self) -> Scenario:
        slow = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(2)\n"}
        paths = [self.project(f"concurrent-{i}", slow) for i in (1, 2)]
        processes = [tagmatrix("run", "-f", str(p), "--reports", str(p.parent / "reports"))
                     for p in paths]
        owners = [Owner.of(p) for p in processes]
        codes = [p.communicate(timeout=600) and p.returncode for p in processes]
        scenario = Scenario("two runs at once", cells=4, exit_code=max(codes), expected_exit=0)
        statuses: set[str] = set()
        for path in paths:
            partial = finish(Scenario("x"), path.parent / "reports", self.client, owners)
            scenario.reported += partial.reported
            statuses.update(partial.statuses.split(","))
        scenario.statuses = ",".join(sorted(statuses))
        scenario.leftovers = len(leftovers(self.client, owners))
        return scenario

    def engine_loss(self) -> Scenario:
        path = self.project("engine-loss", {"test_slow.py": "import time\n\ndef test_s():\n"
                                                            "    time.sleep(30)\n"}, parallel=1)
        reports = path.parent / "reports"
        process = tagmatrix("run", "-f", str(path), "--reports", str(reports))
        owner = Owner.of(process)
        wait_running(self.client, 1, process)
        pid = int(subprocess.run(["pidof", "dockerd"], capture_output=True, text=True,
                                 check=True).stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        process.communicate(timeout=120)
        subprocess.run([str(REPO / "lab" / "up")], capture_output=True, check=True, timeout=300)
        self.client = self.workspace.client = docker.from_env()
        clean = tagmatrix("clean")
        clean.communicate(timeout=120)
        scenario = Scenario("engine stopped mid-run", cells=2, exit_code=process.returncode,
                            expected_exit=3)
        return finish(scenario, reports, self.client, [owner])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disruptive", action="store_true",
                        help="also stop the engine mid-run (restarted with lab/up)")
    parser.add_argument("--out", default=str(REPO / "reports" / "faults.json"))
    args = parser.parse_args()
    client = docker.from_env()
    minors = slim_minors()
    with tempfile.TemporaryDirectory() as tmp, Workspace(Path(tmp), client, REGISTRY) as built:
        runner = Runner(built, minors)
        steps: list[Callable[[], Scenario]] = [
            runner.timeout, lambda: runner.signal(signal.SIGINT, 130),
            lambda: runner.signal(signal.SIGTERM, 143), runner.kill9, runner.oom,
            runner.hostile, runner.flood, runner.rate_limit, runner.concurrent]
        if args.disruptive:
            steps.append(runner.engine_loss)
        scenarios = []
        for step in steps:
            scenario = step()
            scenarios.append(scenario)
            print(f"{'ok ' if scenario.ok else 'BAD'} {scenario.name:32} cells {scenario.cells} "
                  f"lost {scenario.lost} leftovers {scenario.leftovers} exit "
                  f"{scenario.exit_code} cleanup {scenario.cleanup_s:.2f}s "
                  f"[{scenario.statuses}]", flush=True)
    worst = max(s.cleanup_s for s in scenarios)
    summary = {"scenarios": len(scenarios), "cells": sum(s.cells for s in scenarios),
               "results_lost": sum(s.lost for s in scenarios),
               "leftovers": sum(s.leftovers for s in scenarios),
               "worst_cleanup_s": round(worst, 2), "all_ok": all(s.ok for s in scenarios)}
    print(f"\n{summary['scenarios']} scenarios, {summary['cells']} cells, results lost "
          f"{summary['results_lost']}, leftovers {summary['leftovers']}, worst cleanup "
          f"{worst:.2f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "scenarios": [
        {**asdict(s), "lost": s.lost, "ok": s.ok} for s in scenarios]}, indent=2) + "\n")
    return 0 if summary["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
