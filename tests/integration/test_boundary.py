"""Trust and the host boundary on the real engine: secrets, honest times and files, what a
test can reach, runs that must not mix, signals, and bounded memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import (
    REGISTRY,
    Spawn,
    lab_matrix,
    make_project,
    run_matrix,
    run_project,
    tagmatrix,
    wait_running,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

OK = {"test_ok.py": "def test_ok():\n    pass\n"}
SECRET = "s3cr3t_t0ken_value_42"  # noqa: S105 - the value to leak; an identifier: it can name a class
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhdHRrIn0.Zm9vYmFyYmF6cXV1eHNlY3JldHNpZ25hdHVyZQ"
PASSWD = "p\u00e4ssw\u00f6rd-\u00dcn\u00efcode-Secret-42"  # noqa: S105
PEM = ("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7\n"
       "-----END KEY-----")


def matrix_yaml(body: str) -> str:
    """A matrix.yaml for the lab registry with the given matrix/test/other keys."""
    return f'project: .\nimage: {{registry: "{REGISTRY}"}}\n' + body


def every_file(reports: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in reports.rglob("*")
                     if p.is_file() and not p.is_symlink())


def test_no_secret_reaches_any_file_whatever_path_brought_it(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    py = lab_minors[0]
    tests = {"test_leak.py": f"""
        import os, sys

        import pytest

        class Test_{SECRET}:  # a classname carrying the secret
            def test_in_classname(self):
                print({SECRET!r})

        def test_include_secret():
            print("token:", os.environ["INCLUDED"])  # set by an include entry
            assert os.environ["INCLUDED"] == "nope"

        def test_multi_line():
            assert os.environ["PEM"] == "x"  # pytest's diff shows it line by line

        def test_cut():
            assert os.environ["TOKEN"] * 3 == "y"  # pytest shortens long values

        def test_stderr():
            sys.stderr.write(os.environ["TOKEN"][:14] + "...\\n")

        JWT, PASSWD = os.environ["JWT"], os.environ["PASSWD"]

        def test_diff_tail():
            # "Skipping 50 identical leading characters in diff": the tail, on its own line
            assert JWT == JWT[:50] + "Q" * (len(JWT) - 50)

        @pytest.mark.parametrize("pw", [PASSWD], ids=[PASSWD])  # the id escapes it: \\xe4
        def test_param_id(pw):
            pass

        def test_clipped_output():
            print(JWT * 3000)  # 240 KB: the JUnit keeps head and tail, cut inside a copy
    """}
    root = workspace.folder()
    matrix = matrix_yaml(f"""\
matrix:
  python: ["{py}"]
  variant: [slim]
  include:
    - {{python: "{py}", variant: slim, env: {{INCLUDED: {{secret: "inc1ude-s3cret-value"}}}}}}
test:
  command: python -m pytest -q -o junit_logging=system-out tests
  env:
    TOKEN: {{secret: "{SECRET}"}}
    PEM: {{from_env: TAGMATRIX_TEST_PEM}}
    JWT: {{secret: "{JWT}"}}
    PASSWD: {{secret: "{PASSWD}"}}
""")
    outcome = run_matrix(root, matrix, tests, client=docker_client,
                         env={"TAGMATRIX_TEST_PEM": PEM}, expect=1)
    cell = next(iter(outcome.cells().values()))
    assert cell["tests"]["failed"] == 4, cell  # the tests ran and printed what they could
    written = every_file(root / "reports") + outcome.out + outcome.err
    for leak in ("inc1ude-s3cret-value", SECRET, SECRET[:14], "MIIEvQIBADANBgkqhkiG9w0BAQEF",
                 "AASCBKcwggSjAgEAAoIBAQC7", JWT[50:], "Secret-42", ascii(PASSWD)[1:-1]):
        assert leak not in written, leak
    assert "[truncated" in written  # the clipped output was cut ...
    pieces = [p for k in range(8, len(JWT)) for p in (JWT[:k], JWT[-k:]) if p in written]
    assert not pieces, pieces  # ... and no head or tail of the token is left at the cut
    assert "***" in (root / "reports" / "junit.xml").read_text()


def test_a_cells_time_is_its_own_not_the_queue(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(4)\n"}
    path = make_project(workspace.folder(), matrix_yaml(f"""\
matrix:
  python: ["{lab_minors[0]}"]
  variant: [slim]
  n: [a, b, c]
test:
  command: python -m pytest -q tests
parallel: 1
"""), tests)
    run_project(path, client=docker_client, reports=path.parent / "warm")  # the build cache
    outcome = run_project(path, client=docker_client)
    durations = sorted(c["duration_s"] for c in outcome.cells().values())
    # one slot: the last cell waited 8 s or more for it, but its own time is its test's
    # 4 s and the container's start (a loaded machine may add a few seconds, not 8)
    assert durations[-1] < 8.0, durations
    assert all(d >= 4.0 for d in durations), durations


def test_reports_inside_the_project_do_not_change_it(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    path = make_project(workspace.folder(), lab_matrix(lab_minors[:1]), OK)
    first = run_project(path, client=docker_client)  # reports/ inside the project
    second = run_project(path, client=docker_client)
    digests = [next(iter(o.cells().values()))["project_digest"] for o in (first, second)]
    assert digests[0] == digests[1]


def test_a_narrowed_run_writes_only_its_cells_and_a_rerun_merges(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    oldest = tuple(int(p) for p in lab_minors[0].split("."))
    tests = {"test_v.py": f"""
        import sys

        def test_not_oldest():
            assert sys.version_info[:2] != {oldest}
    """}
    path = make_project(workspace.folder(), lab_matrix(lab_minors[:2]), tests)
    reports = path.parent / "reports"
    full = run_project(path, client=docker_client, expect=1).results()["run_id"]
    old, new = f"{lab_minors[0]}-slim", f"{lab_minors[1]}-slim"
    rerun = run_project(path, client=docker_client, args=["--rerun-failed"], expect=1)
    assert sorted(rerun.cells()) == sorted([old, new])  # merged: the passing cell kept
    assert rerun.cells()[new]["status"] == "passed"
    assert rerun.cells()[new]["carried_from"] == full  # and says so
    assert "carried over from run" in (reports / "summary.md").read_text()
    assert (reports / "cells" / f"{new}.xml").is_file()
    narrowed = run_project(path, client=docker_client, args=["--only", f"python={lab_minors[1]}"])
    assert list(narrowed.cells()) == [new]
    assert not (reports / "cells" / f"{old}.xml").exists()
    assert not (reports / "logs" / f"{old}.log").exists()
    shown = tagmatrix("report", "--reports", str(reports))
    assert shown.code == 0, shown.err
    assert old not in shown.out


def test_a_rerun_drops_the_cells_taken_out_of_the_matrix(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_f.py": "def test_fails():\n    assert False\n"}
    old, new = lab_minors[0], lab_minors[-1]
    path = make_project(workspace.folder(), lab_matrix([old, new]), tests)
    run_project(path, client=docker_client, expect=1)
    path.write_text(lab_matrix([new]))  # the oldest interpreter is dropped from the matrix
    rerun = run_project(path, client=docker_client, args=["--rerun-failed"], expect=1)
    assert list(rerun.cells()) == [f"{new}-slim"]  # not carried over, not failing the run
    assert f"no longer in the matrix ({old}-slim)" in rerun.err


def test_a_rerun_of_changed_code_is_not_merged_into_a_green(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    newest = tuple(int(p) for p in lab_minors[1].split("."))
    tests = {"test_v.py": f"""
        import sys

        def test_not_newest():
            assert sys.version_info[:2] != {newest}
    """}
    path = make_project(workspace.folder(), lab_matrix(lab_minors[:2]), tests)
    run_project(path, client=docker_client, expect=1)  # the newer python fails
    # "fixed" by a change that breaks the older one instead
    oldest = tuple(int(p) for p in lab_minors[0].split("."))
    (path.parent / "tests" / "test_v.py").write_text(
        f"import sys\n\ndef test_not_oldest():\n    assert sys.version_info[:2] != {oldest}\n")
    rerun = run_project(path, client=docker_client, args=["--rerun-failed"], expect=2)
    assert "the project changed since run" in rerun.err
    assert "run the whole matrix" in rerun.err
    assert list(rerun.cells()) == [f"{lab_minors[1]}-slim"]  # only what ran, no merged green


def test_a_project_module_cannot_replace_the_bootstraps_imports(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    """The container starts in the project's folder: its json.py must not be what the
    bootstrap imports (it would run before the "go" gate and before no_new_privs)."""
    root = workspace.folder()
    (root / "json.py").write_text("open('/tmp/shadowed', 'w').write('the project ran first')\n")
    tests = {"test_first.py": """
        import os

        def test_the_bootstrap_did_not_import_the_project():
            assert not os.path.exists("/tmp/shadowed")
    """}
    outcome = run_matrix(root, lab_matrix(lab_minors[:1], command=["pytest", "-q", "tests"]),
                         tests, client=docker_client)
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 1


def test_a_committed_link_in_the_reports_folder_is_refused(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2]), OK)
    victim = root.parent / "victim.txt"
    victim.write_text("host file\n")
    logs = root / "reports" / "logs"
    logs.mkdir(parents=True)
    (root / "reports" / ".tagmatrix-reports").touch()  # a commit can fake the marker too
    linked, other = f"{lab_minors[0]}-slim", f"{lab_minors[1]}-slim"
    (logs / f"{linked}.log").symlink_to(victim)
    outcome = run_project(path, client=docker_client, expect=1)
    assert victim.read_text() == "host file\n"
    cells = outcome.cells()
    assert cells[linked]["status"] == "error"  # that cell cannot write its log ...
    assert "is a symbolic link" in cells[linked]["reason"]
    assert cells[other]["status"] == "passed"  # ... the run goes on


def test_mount_mode_tests_cannot_touch_the_checkout(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_evil.py": """
        import os

        def test_write_a_hook_and_a_setuid_file():
            os.makedirs(".git/hooks", exist_ok=True)
            with open(".git/hooks/pre-commit", "w") as f:
                f.write("#!/bin/sh\\necho pwned\\n")
            with open("suid", "w") as f:
                f.write("x")
            os.chmod("suid", 0o4755)

        def test_the_mount_itself_is_read_only():
            try:
                open("/tagmatrix/project/planted", "w")
            except OSError as e:
                assert e.errno == 30  # EROFS
            else:
                raise AssertionError("the checkout is writable")
    """}
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1], extra="""
        build:
          mode: mount
          setup: pip install -q -r requirements.txt
    """), tests)
    before = {str(p.relative_to(root)) for p in root.rglob("*")}
    outcome = run_project(path, client=docker_client, args=["--no-history"])
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 2
    after = {str(p.relative_to(root)) for p in root.rglob("*") if "reports" not in p.parts}
    assert after - before == set()  # no hook, no setuid file, no cache in the checkout


def test_mount_mode_shows_the_tests_only_what_a_build_context_holds(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    """What actions/checkout leaves (.git/config with the job's token), files
    .dockerignore excludes, an earlier run's reports: none of it reaches the tests."""
    root = workspace.folder()
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text('[http "https://github.com/"]\n'
                                          "\textraheader = AUTHORIZATION: basic c2VjcmV0\n")
    (root / ".env").write_text("TOKEN=from-the-env-file\n")
    (root / ".dockerignore").write_text(".env\n")
    tests = {"test_peek.py": """
        import os

        def test_nothing_left_out_is_there():
            for where in ("/tagmatrix/project", "/usr/src/app"):
                assert not os.path.exists(where + "/.git"), where
                assert not os.path.exists(where + "/.env"), where
                assert not os.path.exists(where + "/out/reports"), where
            assert os.path.exists("/usr/src/app/tests/test_peek.py")
    """}
    path = make_project(root, lab_matrix(lab_minors[:1], extra="""
        build:
          mode: mount
          setup: pip install -q -r requirements.txt
    """), tests)
    out = root / "out" / "reports"
    run_project(path, client=docker_client, reports=out, args=["--no-history"])
    outcome = run_project(path, client=docker_client, reports=out, args=["--no-history"])
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 1


def test_mount_mode_records_the_code_its_cells_ran(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    root = workspace.folder()
    (root / "code.py").write_text('VERSION = "A"\n')
    tests = {"test_v.py": """
        import time

        def test_version():
            time.sleep(3)
            import code as c  # the project's code.py (the working folder is on sys.path)
            assert c.VERSION == "A"
    """}
    path = make_project(root, matrix_yaml(f"""\
matrix:
  python: ["{lab_minors[0]}"]
  variant: [slim]
  n: ["1", "2"]
test:
  command: python -m pytest -q -p no:cacheprovider tests
build:
  mode: mount
  setup: pip install -q -r requirements.txt
parallel: 1
"""), tests)
    process = spawn("run", "-f", str(path), "--reports", str(root / "reports"), "--no-history")
    wait_running(docker_client, 1, process, timeout=300)
    (root / "code.py").write_text('VERSION = "B"\n')  # the folder changes during the run
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err  # both cells ran the snapshot: "A"
    results = json.loads((root / "reports" / "results.json").read_text())
    assert len({c["project_digest"] for c in results["cells"]}) == 1


def test_network_none_capabilities_and_no_new_privileges(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_reach.py": """
        import socket, urllib.request

        def test_the_host_index_is_unreachable():
            try:
                urllib.request.urlopen("http://172.17.0.1:5111/", timeout=3)
            except OSError:
                return
            raise AssertionError("reached the host's service")

        def test_no_raw_sockets():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            except PermissionError:
                return
            raise AssertionError("NET_RAW was not dropped")

        def test_no_new_privileges():
            status = open("/proc/self/status").read()
            assert "NoNewPrivs:\\t1" in status
    """}
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], extra="network: none\n"),
                         tests, client=docker_client)
    assert next(iter(outcome.cells().values()))["tests"]["passed"] == 3


def test_a_run_builds_the_project_it_snapshotted(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    root = workspace.folder()
    tests = {"test_marker.py": """
        import pathlib

        def test_marker():
            assert pathlib.Path(__file__).with_name("marker.txt").read_text() == "first"
    """, "test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(4)\n"}
    path = make_project(root, matrix_yaml(f"""\
matrix:
  python: ["{lab_minors[0]}", "{lab_minors[1]}"]
  variant: [slim]
test:
  command: python -m pytest -q tests
parallel: 1
"""), tests)
    (root / "tests" / "marker.txt").write_text("first")
    process = spawn("run", "-f", str(path), "--reports", str(root / "reports"))
    wait_running(docker_client, 1, process, timeout=300)
    (root / "tests" / "marker.txt").write_text("second")  # someone changes the folder meanwhile
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err  # the second cell built the snapshot: "first"
    results = json.loads((root / "reports" / "results.json").read_text())
    assert len({c["project_digest"] for c in results["cells"]}) == 1


def test_two_runs_never_share_a_reports_folder(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    root = workspace.folder()
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(5)\n"}
    path = make_project(root, lab_matrix(lab_minors[:1]), tests)
    first = spawn("run", "-f", str(path), "--reports", str(root / "reports"))
    wait_running(docker_client, 1, first)
    second = tagmatrix("run", "-f", str(path), "--reports", str(root / "reports"))
    assert second.code == 2, second.err
    assert "in use by another run" in second.err
    assert f"pid {first.pid}" in second.err
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert json.loads((root / "reports" / "results.json").read_text())["cells"]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1])
def test_hangup_quit_and_user_signals_cancel_cleanly(
        signum: signal.Signals, workspace: Workspace,
        docker_client: docker.DockerClient, lab_minors: list[str], spawn: Spawn) -> None:
    root = workspace.folder()
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(60)\n"}
    path = make_project(root, lab_matrix(lab_minors[:1]), tests)
    process = spawn("run", "-f", str(path), "--reports", str(root / "reports"))
    wait_running(docker_client, 1, process)
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signum  # 129, 131, 138: as a shell reports it
    cell = json.loads((root / "reports" / "results.json").read_text())["cells"][0]
    assert cell["status"] == "cancelled"
    assert spawn.containers() == set()


def test_a_huge_file_in_the_project_keeps_memory_bounded(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1]), OK)
    with (root / "data.bin").open("wb") as handle:  # sparse: 1 GiB in the tar, not on disk
        handle.truncate(1024**3)
    done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "orchestrator",
                           "run", "-q", "-f", str(path), "--reports", str(root / "reports")],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    assert peak_kb < 300 * 1024, f"tagmatrix's peak RSS was {peak_kb // 1024} MB"


def test_a_test_exiting_252_after_setup_is_a_test_failure(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    tests = {"test_exit.py": "import os\n\ndef test_exit():\n    os._exit(252)\n"}
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], extra="""
        build:
          mode: mount
          setup: pip install -q -r requirements.txt
    """), tests, client=docker_client, expect=1)
    cell = next(iter(outcome.cells().values()))
    assert cell["status"] == "failed", cell
    assert "setup" not in (cell.get("reason") or "")


def test_clean_images_keeps_a_live_runs_and_other_projects_images(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(8)\n"}
    mine = make_project(workspace.folder("mine"), lab_matrix(lab_minors[:1]), tests)
    other = make_project(workspace.folder("other"), lab_matrix(lab_minors[:1]), OK)
    run_project(other, client=docker_client)
    live = spawn("run", "-f", str(mine), "--reports", str(mine.parent / "reports"))
    wait_running(docker_client, 1, live)
    listed = tagmatrix("clean", "-f", str(mine), "--images", "--dry-run")
    assert listed.code == 0, listed.err
    assert "would remove image" not in listed.out, listed.out  # the live run uses them
    assert "a live run of its project uses it" in listed.out, listed.out
    assert other.parent.name not in listed.out  # another project's: not even listed
    out, err = live.communicate(timeout=120)
    assert live.returncode == 0, out + err
    after = tagmatrix("clean", "-f", str(mine), "--images", "--dry-run")
    assert f"would remove image tagmatrix/{mine.parent.name}" in after.out, after.out
    assert other.parent.name not in after.out
