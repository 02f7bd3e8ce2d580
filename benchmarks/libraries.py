"""Real libraries nobody here wrote, through tagmatrix and by hand (make libraries).

For each library: its sdist from the package index (cached in lab/.cache/sdists, never
committed), unpacked; a matrix.yaml of a few lines (install.groups, no Dockerfile) run by
tagmatrix across the lab's interpreters; then, in the very same images, the same tests
run by hand as a maintainer would (``pip install --group G .`` and pytest, writing
JUnit). Both JUnit files are read with junitparser (a consumer tagmatrix does not
use), harness cases left out, and every cell's per-test counts must be equal.

    .venv/bin/python benchmarks/libraries.py [--only pluggy,attrs] [--pythons 3.10,3.13]

Prints a table and writes reports/libraries.json; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.conftest import REGISTRY, slim_minors  # noqa: E402

CACHE = REPO / "lab" / ".cache" / "sdists"
INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    groups: tuple[str, ...]
    command: str = "python -m pytest -q -p no:cacheprovider"
    note: str = ""


# src layouts, dependency groups, pytest plugins (pytest-xdist, pytest-asyncio,
# pytest-randomly, pytest-benchmark), hypothesis, a compiled dependency (time-machine)
LIBRARIES = {
    lib.name: lib for lib in (
        Library("pluggy", "1.7.0", ("testing",),
                note="src layout; pytest depends on pluggy itself"),
        Library("attrs", "26.1.0", ("tests",),
                note="src layout; hypothesis, pytest-xdist, cloudpickle, pympler"),
        Library("structlog", "26.1.0", ("tests",),
                command="python -m pytest -q -p no:cacheprovider -p no:randomly",
                note="src layout; pytest-asyncio, time-machine (compiled); randomly off so "
                     "both runs see the same order"),
        Library("packaging", "26.4", ("test",),
                note="src layout; hypothesis, pretend, pip"),
    )}


def _download(request: urllib.request.Request, *, timeout: float, tries: int = 4) -> bytes:
    """The body of ``request``; a dropped connection, a timeout or a 5xx is tried again
    (after 2, 4, 8 s): one transient error of the index must not fail a test run."""
    for attempt in range(1, tries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == tries:
                raise
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == tries:
                raise
        time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def fetch_sdist(name: str, version: str) -> Path:
    """The sdist from the package index's simple API (PEP 691 JSON), checked against
    the sha256 the index publishes; nothing is built on the host."""
    CACHE.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}.tar.gz"
    target = CACHE / filename
    if target.is_file():
        return target
    page = urllib.request.Request(f"{INDEX}/{name}/",  # noqa: S310 - https
                                  headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = json.loads(_download(page, timeout=60))["files"]
    found = next(f for f in files if f["filename"] == filename)
    url = urllib.parse.urljoin(page.full_url, found["url"])
    data = _download(urllib.request.Request(url), timeout=300)  # noqa: S310 - https
    if hashlib.sha256(data).hexdigest() != found["hashes"]["sha256"]:
        raise SystemExit(f"{filename}: sha256 differs from the index's")
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(into, filter="data")
    (root,) = [p for p in into.iterdir() if p.is_dir()]
    return root


def junit_counts(path: Path, *, cell: str | None = None) -> dict[str, int]:
    """passed/failed/errors/skipped from a JUnit file, read by junitparser."""
    from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

    counts: Counter[str] = Counter()
    xml: Any = JUnitXml.fromfile(str(path))
    suites: list[Any] = [xml] if isinstance(xml, TestSuite) else list(xml)
    for suite in suites:
        for case in suite:
            if cell is not None and case.classname == f"{cell}.tagmatrix":
                continue  # tagmatrix's harness cases (build, run, results)
            results = case.result
            kinds = {type(r) for r in results}
            counts["failed" if Failure in kinds else "errors" if Error in kinds
                   else "skipped" if Skipped in kinds else "passed"] += 1
    return {k: counts[k] for k in ("passed", "failed", "errors", "skipped")}


def through_tagmatrix(library: Library, project: Path, pythons: list[str],
                      reports: Path) -> tuple[dict[str, dict[str, int]], float, int]:
    groups = ", ".join(library.groups)
    matrix = project / "tagmatrix-matrix.yaml"
    matrix.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                      f"matrix:\n  python: {json.dumps(pythons)}\n  variant: [slim]\n"
                      f"install:\n  groups: [{groups}]\n"
                      f"test:\n  command: {json.dumps(library.command)}\n  timeout: 1800\n"
                      "parallel: 2\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "-q", "-f", str(matrix),
                           "--reports", str(reports)], capture_output=True, text=True,
                          check=False)
    seconds = time.monotonic() - started
    results = json.loads((reports / "results.json").read_text())
    counts = {}
    for cell in results["cells"]:
        if cell["status"] not in ("passed", "failed"):
            raise SystemExit(f"{library.name} {cell['id']}: {cell['status']}: {cell['reason']}"
                             f"\n{done.stderr}")
        counts[cell["id"]] = junit_counts(reports / "cells" / f"{cell['id']}.xml",
                                          cell=cell["id"])
    return counts, seconds, done.returncode


def by_hand(library: Library, project: Path, python: str, out: Path) -> dict[str, int]:
    """pip install --group G . then pytest, in the same image, as a maintainer would."""
    image = f"{REGISTRY}/library/python:{python}-slim"
    groups = " ".join(f"--group {g}" for g in library.groups)
    script = (f"cp -a /src /work && cd /work && pip install -q --root-user-action=ignore "
              f"{groups} . && {library.command} --junitxml=/out/junit.xml; true")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["docker", "run", "--rm", "--network", "bridge", "-v", f"{project}:/src:ro",
                    "-v", f"{out}:/out", image, "sh", "-c", script], check=True,
                   capture_output=True)
    return junit_counts(out / "junit.xml")


def artifact_of(reports: Path) -> str:
    """What every cell installed (results.json's install.artifact: under install.project
    auto, a pure wheel built once from the sdist, or the sdist)."""
    cells = json.loads((reports / "results.json").read_text())["cells"]
    return ", ".join(sorted({c["install"].get("artifact") or "?" for c in cells}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated library names")
    parser.add_argument("--pythons", help="comma-separated minors (default: the lab's)")
    parser.add_argument("--out", default=str(REPO / "reports" / "libraries.json"))
    args = parser.parse_args()
    chosen = [LIBRARIES[n] for n in args.only.split(",")] if args.only else list(LIBRARIES.values())
    pythons = args.pythons.split(",") if args.pythons else slim_minors()
    rows, ok = [], True
    for library in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            project = unpack(fetch_sdist(library.name, library.version), Path(tmp) / "src")
            ours, seconds, code = through_tagmatrix(library, project, pythons,
                                                    Path(tmp) / "reports")
            artifact = artifact_of(Path(tmp) / "reports")
            print(f"{library.name:10} artifact: {artifact}", flush=True)
            for python in pythons:
                cell = f"{python}-slim"
                theirs = by_hand(library, project, python, Path(tmp) / "hand" / python)
                same = ours[cell] == theirs
                ok &= same
                rows.append({"library": f"{library.name} {library.version}", "cell": cell,
                             "tagmatrix": ours[cell], "by_hand": theirs, "same": same,
                             "tagmatrix_run_s": round(seconds, 1), "exit": code,
                             "artifact": artifact})
                print(f"{library.name:10} {cell:10} tagmatrix {ours[cell]}  by hand {theirs}  "
                      f"{'same' if same else 'DIFFERENT'}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
