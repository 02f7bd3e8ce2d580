"""The few lines of Python that start every test container.

Every python image has ``python`` on PATH, so a cell's container runs
``python -c BOOTSTRAP`` with the job in ``TAGMATRIX_JOB`` (JSON). It records
what the interpreter says about itself (the official images put it first on
PATH at /usr/local/bin/python), runs the optional setup command, then
*replaces itself* with the test command (``os.execvp``): same PID, signals and
exit code as if the command had been started directly.

In ``frame`` mode (engines without file copy-out, e.g. Swarm) it instead runs
the command as a child and, after it exits, prints the interpreter record and
the JUnit file on stdout between marker lines that the engine decodes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from ..container import WARNINGS_PLUGIN, WARNINGS_PLUGIN_NAME
from ..jobs import MOUNT_DIR, WORKDIR, Job

FRAME_BEGIN = "@@tagmatrix-frame-begin@@"
FRAME_END = "@@tagmatrix-frame-end@@"
SETUP_FAILED_EXIT = 252  # reserved: the setup command failed, tests never ran
WARNINGS_FILE = "warnings.json"  # the warnings ledger, in the job's folder

# Kept lean: every cell pays its start-up. `python -I -S` skips site; `platform` and
# `subprocess` are imported only where needed.
BOOTSTRAP = r"""
import json, os, sys, time
job = json.loads(os.environ.pop("TAGMATRIX_JOB"))
if job.get("gate"):
    # Started ahead of its turn: wait, idle, for tagmatrix's "go" on stdin, then
    # give the tests an empty stdin as in any non-interactive run.
    sys.stdin.buffer.readline()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
if sys.platform.startswith("linux"):
    # no_new_privs for the tests and all they start (setuid binaries stay unprivileged),
    # on every engine: a Swarm service cannot ask for it before Docker API 1.44
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    except Exception as e:
        sys.stderr.write("[tagmatrix] cannot set no_new_privs: %r\n" % (e,))
now = time.time()
d = job["dir"]
os.makedirs(d, exist_ok=True)
if job.get("copy"):
    # mount mode: the checkout is bound read-only; the tests run on a copy of it
    import shutil
    c = job["copy"]
    shutil.copytree(c["from"], c["to"], symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*c["skip"]))
    os.chdir(c["to"])
name = sys.implementation.name
info = {"version": sys.version.split()[0], "executable": sys.executable,
        "implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(name, name),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                   + ".%06dZ" % int((now % 1) * 1e6)}
with open(os.path.join(d, "interpreter.json"), "w") as f:
    json.dump(info, f)
plugin = job.get("plugin")
if plugin:
    # A pytest plugin of tagmatrix's (the warnings ledger), loaded by PYTEST_ADDOPTS "-p":
    # its folder goes first on the tests' PYTHONPATH, its output into our folder.
    pd = os.path.join(d, "plugins")
    os.makedirs(pd, exist_ok=True)
    with open(os.path.join(pd, plugin["name"] + ".py"), "w", encoding="utf-8") as f:
        f.write(plugin["source"])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        x for x in (pd, os.environ.get("PYTHONPATH")) if x)
    os.environ[plugin["env"]] = os.path.join(d, plugin["output"])
sys.stdout.flush()
if job.get("setup"):
    import subprocess
    sys.stderr.write("[tagmatrix] setup: %s\n" % " ".join(job["setup"]))
    sys.stderr.flush()
    code = subprocess.call(job["setup"])
    if code:  # only a failed setup leaves setup.json: a test exiting 252 is a test
        with open(os.path.join(d, "setup.json"), "w") as f:
            json.dump({"exit_code": code}, f)
        sys.exit(252)
record = None
if job.get("packages"):
    # What is installed, as the tests will see it (site is off: name the folders).
    try:
        import importlib.metadata as md, sysconfig
        where = [p for p in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")} if p]
        record = {"packages": {x.name: x.version for x in md.distributions(path=where)
                               if x.name}}
        p = job.get("install_record")
        if p and os.path.isfile(p):
            with open(p) as f:
                record["install"] = json.load(f)
        with open(os.path.join(d, "packages.json"), "w") as f:
            json.dump(record, f)
    except Exception as e:
        sys.stderr.write("[tagmatrix] cannot list the installed packages: %r\n" % (e,))
argv = job["command"]
if job.get("frame"):
    import base64, subprocess
    try:
        code = subprocess.call(argv)
    except OSError as e:
        sys.stderr.write("tagmatrix: cannot run %r: %s\n" % (argv[0], e))
        code = 127
    sys.stdout.flush()
    payload = {"interpreter": info, "exit_code": code, "junit": None, "packages": record}
    path = job.get("junit")
    if path and os.path.isfile(path) and os.path.getsize(path) <= job["max_junit"]:
        with open(path, "rb") as f:
            payload["junit"] = base64.b64encode(f.read()).decode()
    path = plugin and os.path.join(d, plugin["output"])
    if path and os.path.isfile(path) and os.path.getsize(path) <= plugin["max_bytes"]:
        with open(path, "rb") as f:
            payload["warnings"] = base64.b64encode(f.read()).decode()
    out = base64.b64encode(json.dumps(payload).encode()).decode()
    sys.stdout.write("\n%s\n" % job["begin"])
    for i in range(0, len(out), 76):
        sys.stdout.write(out[i:i + 76] + "\n")
    sys.stdout.write("%s\n" % job["end"])
    sys.stdout.flush()
    sys.exit(code)
if os.name == "nt":
    import subprocess
    sys.exit(subprocess.call(argv))
try:
    os.execvp(argv[0], argv)
except OSError as e:
    sys.stderr.write("tagmatrix: cannot run %r: %s\n" % (argv[0], e))
    sys.exit(127)
"""


def container_command() -> list[str]:
    """The argv every test container starts with."""
    # -I: isolated, the working folder (the project) is not on sys.path and PYTHON*
    # variables are ignored: a project's json.py or ctypes.py must not run in place of
    # the bootstrap's imports, before the "go" gate and before no_new_privs
    return ["python", "-I", "-S", "-c", BOOTSTRAP]


@functools.cache
def warnings_plugin() -> dict[str, Any]:
    """The warnings ledger's pytest plugin as the bootstrap writes it into the container
    (its source travels in TAGMATRIX_JOB: no change to the user's project or image)."""
    from ..container.tagmatrix_warnings import ENV
    from ..warnings_ledger import MAX_FILE_BYTES

    return {"name": WARNINGS_PLUGIN_NAME, "source": WARNINGS_PLUGIN.read_text(encoding="utf-8"),
            "env": ENV, "output": WARNINGS_FILE, "max_bytes": MAX_FILE_BYTES}


def job_env(*, directory: str, command: Sequence[str], setup: Sequence[str] | None,
            junit: str | None = None, frame: bool = False, gate: bool = False,
            max_junit: int = 64 * 1024 * 1024, install_record: str | None = None,
            copy: dict[str, object] | None = None, warnings: bool = False) -> str:
    """The ``TAGMATRIX_JOB`` value for one container (``gate``: wait for "go" on stdin;
    ``copy``: mount mode's read-only checkout to copy into the workdir first;
    ``warnings``: ship the warnings ledger's pytest plugin)."""
    return json.dumps({
        "dir": directory, "command": list(command), "setup": list(setup) if setup else None,
        "frame": frame, "gate": gate, "junit": junit, "max_junit": max_junit,
        "begin": FRAME_BEGIN, "end": FRAME_END, "packages": True,
        "install_record": install_record, "copy": copy,
        "plugin": warnings_plugin() if warnings else None,
    })


# Left out of mount mode's copy of the checkout, as out of build contexts.
COPY_SKIP = (".git", ".hg", ".svn", ".tagmatrix", ".tox", ".nox", ".venv", "__pycache__",
             "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")


def container_env(job: Job, *, gate: bool = False, frame: bool = False) -> dict[str, str]:
    """Environment of a job's container: the user's, pytest's JUnit plumbing, the job."""
    env = {e.name: e.value for e in job.env}
    addopts = [env.get("PYTEST_ADDOPTS", "")]
    if job.pytest_junit and job.junit_path:
        addopts.append(f"--junitxml={job.junit_path}")
        addopts.append(f"-p {WARNINGS_PLUGIN_NAME}")  # the warnings ledger (job_env ships it)
    if any(addopts[1:]):
        env["PYTEST_ADDOPTS"] = " ".join(a for a in addopts if a)
    copy: dict[str, object] | None = None
    if job.mount is not None:
        rules = job.context_rules
        skip = [*COPY_SKIP, *(e for e in (*rules.excludes, *rules.own)
                              if "/" not in e and "*" not in e)]
        copy = {"from": MOUNT_DIR[job.platform], "to": WORKDIR[job.platform],
                "skip": sorted(set(skip))}
    env["TAGMATRIX_JOB"] = job_env(directory=job.container_dir, command=job.command,
                                   setup=job.setup, gate=gate, frame=frame,
                                   junit=job.junit_path, install_record=job.install_record,
                                   copy=copy, warnings=job.pytest_junit)
    return env
