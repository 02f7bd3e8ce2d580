"""Runs INSIDE a container, while tagmatrix builds a project image (never on the host:
building a project runs its build backend, which is the pull request's code).

    python artifact.py '{"kind": "sdist", "src": "/tagmatrix/src", "out": "/tagmatrix",
                         "requirements": ["requirements-test.txt"]}'

Builds the project's artifact once, with build isolation, the way ``python -m build``
does (pypa/build, installed in the image first), and prepares what every cell's
dependency layer needs:

- OUT/dist/<artifact>: the sdist (kind sdist) or the wheel (kind wheel, built from
  the sdist as ``python -m build`` does); nothing for editable and none;
- OUT/deps/req/<path>: the requirements files (and what they include), at the paths
  they have in the project, so their relative references keep working;
- OUT/deps/project.json: the project's name, Requires-Dist and extras;
- OUT/deps/tagmatrix_project_deps-0-py3-none-any.whl: a metadata-only wheel whose
  Requires-Dist and Provides-Extra are the project's own. A cell installs
  ``that_wheel[extras]`` to get exactly the project's dependencies, extras and
  environment markers evaluated by the cell's own installer for the cell's own
  interpreter, without installing the project; its bytes depend only on the
  dependency metadata, so the dependency layer stays cached when only code changes.

Standard library only (plus pypa/build where a build is needed). The last line
printed on failure starts with "tagmatrix: error: " and names the cause.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

STUB = "tagmatrix_project_deps"
_CAUSE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Exit)\b|error:|ERROR\b|FATAL)")


def fail(message: str) -> None:
    sys.stdout.flush()
    print(f"tagmatrix: error: {message}", flush=True)
    sys.exit(1)


def cause(lines: list[str]) -> str:
    """The line of a failed build that says why: the last exception or error line
    before pypa/build's own closing "ERROR Backend subprocess exited ..." line."""
    for line in reversed(lines):
        text = line.strip()
        if text and _CAUSE.match(text) and "Backend subprocess exited" not in text:
            return text[:500]
    return next((x.strip()[:500] for x in reversed(lines) if x.strip()), "no output")


def run(argv: list[str], what: str) -> None:
    """Run a command, its output passed through; on failure, fail with the cause."""
    print(f"[tagmatrix] {what}: {' '.join(argv)}", flush=True)
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            tail = [*tail[-199:], line]
    sys.stdout.flush()
    if process.returncode:
        fail(f"{what} failed: {cause(tail)}")


def copy_requirements(src: Path, out: Path, paths: list[str]) -> None:
    for relative in paths:
        source, target = src / relative, out / "req" / relative
        if not source.exists() and not source.is_symlink():
            fail(f"{relative} is not in the build context (excluded by .dockerignore?)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)


def sdist_metadata(sdist: Path) -> str | None:
    """PKG-INFO of an sdist when PEP 643 makes its dependencies reliable (Metadata-Version
    2.2+ and neither Requires-Dist nor Provides-Extra dynamic); else None."""
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO") \
                    and member.isfile():
                handle = archive.extractfile(member)
                text = handle.read(1 << 20).decode("utf-8", "replace") if handle else ""
                break
        else:
            return None
    meta = Parser().parsestr(text)
    version = tuple(int(p) for p in re.findall(r"\d+", meta.get("Metadata-Version", "0"))[:2])
    dynamic = {d.lower() for d in meta.get_all("Dynamic") or []}
    if version >= (2, 2) and not dynamic & {"requires-dist", "provides-extra"}:
        return text
    return None


def prepared_metadata(source: Path) -> str:
    """The wheel metadata as the backend prepares it (isolated, like pip would)."""
    from build.util import project_wheel_metadata

    with tempfile.TemporaryDirectory() as tmp:
        # on a copy: setuptools writes <name>.egg-info into the tree it is given
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, symlinks=True)
        try:
            metadata: Any = project_wheel_metadata(copy, isolated=True)
        except Exception as exc:  # noqa: BLE001 - any backend failure ends the build
            fail(f"preparing the project's metadata failed: {exc}")
        return str(metadata.as_string() if hasattr(metadata, "as_string") else metadata)


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next((n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if name is None:
            fail(f"{wheel.name} has no METADATA")
        return archive.read(str(name)).decode("utf-8", "replace")


def write_stub(text: str, out: Path) -> dict[str, Any]:
    """The metadata-only wheel (see the module docstring), byte-identical for identical
    dependency metadata: fixed timestamps, sorted members."""
    meta = Parser().parsestr(text)
    requires = [str(r) for r in meta.get_all("Requires-Dist") or []]
    extras = [str(e) for e in meta.get_all("Provides-Extra") or []]
    lines = ["Metadata-Version: 2.1", f"Name: {STUB.replace('_', '-')}", "Version: 0",
             *(f"Requires-Dist: {r}" for r in requires),
             *(f"Provides-Extra: {e}" for e in extras)]
    info = f"{STUB}-0.dist-info"
    files = {f"{info}/METADATA": ("\n".join(lines) + "\n").encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tagmatrix\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for name, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(data)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    target = out / f"{STUB}-0-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return {"name": meta.get("Name", ""), "requires": requires, "extras": extras}


def fresh(folder: Path) -> None:
    """An empty folder at ``folder``: whatever the build backend (the project's code, run
    as root in this image) left there, files or links, is gone before tagmatrix writes."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


# a compiled module in a wheel, whatever its tag says (a build can copy one in)
_BINARY = (".so", ".pyd", ".dylib", ".dll")


def impure(wheel: Path) -> str | None:
    """Why one wheel cannot serve every interpreter (None: it is pure Python): its tag,
    its WHEEL file, or a compiled module among its files."""
    if not wheel.name.endswith("-none-any.whl"):  # py3-none-any, py2.py3-none-any
        return wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        binary = next((n for n in names if n.lower().endswith(_BINARY)), None)
        if binary is not None:
            return f"{wheel.name} holds {binary}"
        info = next((n for n in names if n.count("/") == 1 and n.endswith(".dist-info/WHEEL")),
                    None)
        text = archive.read(info).decode("utf-8", "replace") if info else ""
    if Parser().parsestr(text).get("Root-Is-Purelib", "").strip().lower() != "true":
        return f"{wheel.name} says Root-Is-Purelib: false"
    return None


def main() -> None:
    args = json.loads(sys.argv[1])
    kind, src, out = args["kind"], Path(args["src"]), Path(args["out"])
    deps, dist = out / "deps", out / "dist"
    project: dict[str, Any] = {"kind": kind}
    with tempfile.TemporaryDirectory() as tmp:
        artifact, text = None, None
        if kind in ("sdist", "wheel"):
            run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp, str(src)],
                "building the sdist")
            sdist = next(Path(tmp).glob("*.tar.gz"), None)
            if sdist is None:
                fail("the build produced no sdist")
            assert sdist is not None
            artifact = sdist
            if kind == "wheel":
                run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp, str(sdist)],
                    "building the wheel from the sdist")
                artifact = next(Path(tmp).glob("*.whl"))
                why = impure(artifact)
                if why is not None:
                    fail(f"the project's wheel is not pure Python ({why}): one wheel cannot "
                         "serve every interpreter; use install.project: sdist (each cell "
                         "builds its own)")
                text = wheel_metadata(artifact)
            else:
                text = sdist_metadata(sdist) or _from_unpacked(sdist)
        elif kind == "editable":
            text = prepared_metadata(src)
        # what the cells copy is written now, after every build step ran the backend
        fresh(deps)
        fresh(dist)
        (deps / "req").mkdir()  # the installer's working folder
        copy_requirements(src, deps, list(args.get("requirements") or []))
        if artifact is not None:  # a new regular file, whatever the backend left at its path
            shutil.copyfile(artifact, dist / artifact.name)
        if text is not None:
            project.update(write_stub(text, deps))
    (deps / "project.json").write_text(json.dumps(project, indent=1, sort_keys=True) + "\n")
    requires = project.get("requires", [])
    extras = sum(1 for r in requires if re.search(r"\bextra\s*==", r))
    print(f"[tagmatrix] project {project.get('name') or '(application)'}: {kind}; "
          f"{len(requires)} declared requirements ({extras} of them in extras)", flush=True)


def _from_unpacked(sdist: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(tmp, filter="data")
            else:  # an interpreter from before tarfile's filters (3.10.11 and older)
                archive.extractall(tmp)  # noqa: S202 - the sdist the backend just built
        roots = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(roots) != 1:
            fail(f"{sdist.name} does not unpack into one folder")
        return prepared_metadata(roots[0])


if __name__ == "__main__":
    main()
