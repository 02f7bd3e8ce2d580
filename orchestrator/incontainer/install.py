"""Runs INSIDE a container, while tagmatrix builds a cell's image.

    python -I install.py deps       # the test dependencies (one layer)
    python -I install.py project    # the project's sdist or wheel (the next layer)
    python -I install.py editable   # pip install -e . of the copied project

Each step reads its arguments from ``step-<step>.json`` beside this file. Both come
from the cell build's own context (dockerfile.py), never from the project image: what
the project image prepared (requirements files, the metadata-only wheel, project.json)
is data in another folder (``data`` in the arguments), and pip runs as ``python -I -m
pip`` so nothing in the working folder (the project's requirements files) can stand
in for pip's modules.

``deps`` installs, in one resolver run: the project's own dependencies with the
selected extras, the requirements files, the packages and the resolved dependency
groups. With pip (``resolution: highest``) the project's dependencies come through
the metadata-only wheel artifact.py wrote, so pip itself evaluates extras and
markers for this interpreter. ``resolution: lowest-direct`` runs uv (installed for
the occasion, outside the test environment) with ``--resolution lowest-direct``;
there the project's requirements must be *direct* ones, so they are listed with
their markers evaluated here. What ran is recorded in record.json next to this
file, which the cell's bootstrap returns with the test results; the reports take
only what the container alone knows from it (the installer's version, the project's
declared requirements), never the resolution, extras or groups, which the plan says.

``project`` force-reinstalls the artifact without dependencies (an older release of
the project pulled in as a dependency of a test tool, e.g. pluggy by pytest, must
not stay), then ``pip check`` verifies nothing the project needs is missing.

Standard library only. On failure the last line starts with "tagmatrix: error: ".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
UV_DIR = "/tmp/tagmatrix-uv"  # noqa: S108 - inside the container; removed after the install
STUB = "tagmatrix_project_deps-0-py3-none-any.whl"
RECORD = "record.json"  # what the install did, read back at run time (Job.install_record)
PIP = [sys.executable, "-I", "-m", "pip"]
QUIET = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore",
         "PIP_NO_CACHE_DIR": "1", "PIP_NO_INPUT": "1", "UV_NO_CACHE": "1"}
# pip says "ERROR: ...", uv "error: ..." or a line starting with a cross (U+00D7)
_ERROR = re.compile(r"^\s*(?:ERROR:|error:|\u00d7|[\w.]+(?:Error|Exception)\b)")
_SAID = re.compile(r"^\s*(?:ERROR:|error:|\u00d7)")
# the helper distribution that carries the project's requirements (STUB), as an
# installer names it in "(from tagmatrix-project-deps[tests])": not a name a user knows
_HELPER = re.compile(r"tagmatrix[-_]project[-_]deps(?:\[([^\]]*)\])?", re.IGNORECASE)


def _plain(line: str) -> str:
    """An installer's line with the helper's name said as what it stands for."""
    return _HELPER.sub(lambda m: "the project's requirements" + (
        f" with extras {m[1]}" if m[1] else ""), line)


def fail(message: str) -> None:
    sys.stdout.flush()
    print(f"tagmatrix: error: {message}", flush=True)
    sys.exit(1)


def run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run an installer, output passed through; on failure, fail quoting its last error
    line (pip's "ERROR: No matching distribution found for X")."""
    print(f"[tagmatrix] {what}: {' '.join(argv)}", flush=True)
    lines: list[str] = []
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", cwd=cwd,
                                   env={**os.environ, **QUIET})
    except OSError as exc:
        fail(f"{what}: cannot run {argv[0]}: {exc}")
    with process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            lines = [*lines[-199:], line]
    sys.stdout.flush()
    if process.returncode:
        # the installer's own words first ("error: Failed to build pyyaml==6.0"): a
        # build backend's traceback comes after them and names no package
        said = [x.strip() for x in lines if _SAID.match(x)]
        errors = said or [x.strip() for x in lines if _ERROR.match(x)]
        last = errors[-1] if errors else next((x.strip() for x in reversed(lines)
                                               if x.strip()), "no output")
        fail(f"{what} failed: {_plain(last)[:500]}")
    return "".join(lines)


def version_of(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False,
                              env={**os.environ, **QUIET}).stdout.split()[1]
    except (OSError, IndexError):
        return "?"


def image_uv_config() -> Path | None:
    """The image's own uv configuration file (user level first, as uv ranks them)."""
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    dirs = (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    for candidate in (os.environ.get("UV_CONFIG_FILE"), f"{home}/uv/uv.toml",
                      *(f"{d}/uv/uv.toml" for d in dirs if d), "/etc/uv/uv.toml"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def uv() -> list[str]:
    """uv, installed from the package index into a folder of its own (not into the
    environment the tests run in), pointed at the index pip is configured with."""
    target = Path(UV_DIR)
    run([*PIP, "install", "--target", str(target), "uv"], "installing uv")
    binary = target / "bin" / ("uv.exe" if os.name == "nt" else "uv")
    argv = [str(binary), "pip", "install", "--python", sys.executable, "--system"]
    # uv also reads a uv.toml (or pyproject.toml's [tool.uv]) in its working folder and
    # the folders above it, which hold what the project image prepared: the project's
    # build could have put one there. Only the image's own file counts (one file: uv
    # would merge a user-level and a system-level one).
    config = image_uv_config()
    argv += ["--config-file", str(config)] if config else ["--no-config"]
    configured = os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or config
    if not configured:  # uv does not read pip.conf: point it at the index pip uses
        found = subprocess.run([*PIP, "config", "get", "global.index-url"], text=True,
                               capture_output=True, check=False).stdout.strip()
        if found:
            argv += ["--default-index", found]
            if found.startswith("http://"):
                argv += ["--allow-insecure-host", found.split("/")[2].split("@")[-1]]
    return argv


def direct(requires: list[str], extras: list[str]) -> list[str]:
    """The project's requirements that apply here, markers evaluated for this
    interpreter and the chosen extras (packaging as pip vendors it: the cell may have
    nothing else). For lowest-direct they must be direct requirements, which the
    metadata-only wheel's would not be."""
    from pip._vendor.packaging.requirements import Requirement

    out = []
    for text in requires:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in ["", *extras]):
            requirement.marker = None
            out.append(str(requirement))
    return out


def deps(args: dict[str, Any]) -> None:
    data = Path(args["data"])
    project = json.loads((data / "project.json").read_text()) \
        if (data / "project.json").is_file() else {}
    lowest = args.get("resolution") == "lowest-direct"
    extras = list(args.get("extras") or [])
    requirements: list[str] = []
    if args.get("stub") and lowest:
        requirements += direct(list(project.get("requires") or []), extras)
    elif args.get("stub"):
        requirements.append(str(data / STUB) + (f"[{','.join(extras)}]" if extras else ""))
    for path in args.get("requirements") or []:
        requirements += ["-r", path]
    requirements += list(args.get("packages") or [])
    resolver = "nothing to install"
    if requirements:
        if lowest:
            installer = uv()
            resolver = f"uv {version_of([installer[0], '--version'])} (lowest-direct)"
            run([*installer, "--resolution", "lowest-direct", *requirements],
                "installing the test dependencies (lowest-direct)", cwd=data / "req")
            shutil.rmtree(UV_DIR, ignore_errors=True)
        else:
            resolver = f"pip {version_of([*PIP, '--version'])}"
            run([*PIP, "install", *requirements], "installing the test dependencies",
                cwd=data / "req")
        if args.get("stub") and not lowest:
            run([*PIP, "uninstall", "-y", "tagmatrix-project-deps"], "removing the helper")
    record = {"resolver": resolver, "resolution": args.get("resolution") or "highest",
              "extras": args.get("extras") or [], "groups": args.get("groups") or [],
              "requirements": args.get("requirements") or [],
              "project": {"name": project.get("name", ""),
                          "requires": project.get("requires", [])}}
    write_record(data, record)


def write_record(data: Path, record: dict[str, Any]) -> None:
    (data / RECORD).write_text(json.dumps(record, sort_keys=True) + "\n")


def project(args: dict[str, Any]) -> None:
    suffix = ".whl" if args["kind"] == "wheel" else ".tar.gz"
    found = sorted(Path(args["dist"]).glob(f"*{suffix}"))
    if len(found) != 1:
        fail(f"expected one {suffix} in {args['dist']}, found {len(found)}")
    if found[0].is_symlink() or not found[0].is_file():  # the project image's own doing
        fail(f"{found[0].name} in {args['dist']} is not a regular file")
    run([*PIP, "install", "--force-reinstall", "--no-deps", str(found[0])],
        f"installing the project ({args['kind']} {found[0].name})")
    if args.get("data"):  # the deps step's record, which the reports read, names it
        data = Path(args["data"])
        path = data / RECORD
        record = json.loads(path.read_text()) if path.is_file() else {}
        write_record(data, {**record, "artifact": found[0].name})
    run([*PIP, "check"], "checking the installed distributions")


def editable(args: dict[str, Any]) -> None:
    run([*PIP, "install", "--no-deps", "-e", args["path"]], "installing the project (editable)")
    run([*PIP, "check"], "checking the installed distributions")


def main() -> None:
    step = sys.argv[1]
    args = json.loads((HERE / f"step-{step}.json").read_text(encoding="utf-8"))
    {"deps": deps, "project": project, "editable": editable}[step](args)


if __name__ == "__main__":
    main()
