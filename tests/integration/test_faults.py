"""One test per fault: hangs, build hangs, OOM, signals, kill -9, secrets, concurrency,
rate limits, a 1 GiB flood. Real engine, real registry, real processes."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import junitparser
import pytest

from orchestrator.labels import LABEL_RUN
from tests.integration.conftest import (
    Outcome,
    Spawn,
    lab_matrix,
    make_project,
    read_stderr_until,
    read_until_exit,
    run_matrix,
    run_project,
    tagmatrix,
    wait_running,
)
from tests.integration.flaky_registry import FlakyRegistry
from tests.integration.workspace import Workspace, remove_images

pytestmark = pytest.mark.docker

SLEEPER = {"test_sleep.py": """
    import sys
    import time

    def test_sleeps_forever():
        print("started", flush=True)
        sys.stdout.flush()
        time.sleep(100000)
"""}


def containers_with(client: docker.DockerClient, marker: str) -> set[str]:
    """Ids of the containers whose command holds ``marker`` (running or not)."""
    return {str(c["Id"]) for c in client.api.containers(all=True)
            if marker in str(c.get("Command", ""))}


def _run_ids(client: docker.DockerClient, containers: set[str]) -> set[str]:
    """The run ids on these containers' labels."""
    return {client.api.inspect_container(c)["Config"]["Labels"][LABEL_RUN] for c in containers}


def test_hung_test_is_killed_at_its_deadline(workspace: Workspace,
                                             docker_client: docker.DockerClient,
                                             lab_minors: list[str]) -> None:
    # -s: the test's own print reaches the container's output before the hang
    outcome = run_matrix(workspace.folder(), lab_matrix(
        lab_minors[:1], timeout=5, command="python -m pytest -q -s tests"), SLEEPER,
        client=docker_client, expect=1)
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "timeout"
    assert "exceeded the 5 s timeout" in cell["reason"]
    assert cell["run_s"] < 5 + 5  # gone within timeout + 5 s
    assert "started" in (outcome.reports / cell["log"]).read_text()  # the log is kept


def test_build_that_hangs_is_stopped_at_the_build_timeout(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1], extra="""
        build:
          dockerfile: Dockerfile
          timeout: 5
    """), {"test_ok.py": "def test_ok():\n    pass\n"})
    # The builder's intermediate container carries no label of ours: the token in
    # its command tells it from everyone else's containers on the engine.
    marker = f"hang-{workspace.token}"
    (root / "Dockerfile").write_text(
        f"ARG PYTHON_IMAGE\nFROM ${{PYTHON_IMAGE}}\nRUN echo {marker} && sleep 600\n")
    started = time.monotonic()
    process = spawn("run", "-f", str(path), "--reports", str(root / "reports"))
    deadline = started + 60
    while not containers_with(docker_client, marker):  # the build really hangs
        assert process.poll() is None, "tagmatrix ended before the build step ran"
        assert time.monotonic() < deadline, "the build step never started"
        time.sleep(0.1)
    out, err = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert process.returncode == 1, out + err
    cell = Outcome(1, out, err, root / "reports").cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "error"
    assert cell["stage"] == "build"
    assert "build timed out after 5 s" in cell["reason"]
    assert elapsed < 5 + 15
    # the builder's intermediate container goes too
    deadline = time.monotonic() + 15
    while containers_with(docker_client, marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers_with(docker_client, marker) == set()
    assert spawn.containers() == set()


def test_out_of_memory_is_an_error(workspace: Workspace, docker_client: docker.DockerClient,
                                   lab_minors: list[str]) -> None:
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], extra="""
        limits: {memory: 64m}
    """), {"test_hog.py": "def test_hog():\n    b = bytearray(400 * 1024 * 1024)\n"
                          "    assert len(b)\n"}, client=docker_client, expect=1)
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "error"
    assert "out of memory" in cell["reason"]


@pytest.mark.parametrize("signal_and_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_cleans_up_and_reports_within_7_5_s(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        signal_and_code: tuple[int, int], spawn: Spawn) -> None:
    signum, code = signal_and_code
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2]), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(root / "r"))
    wait_running(docker_client, 2, process)
    sent = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == code, err
    assert elapsed < 7.5, f"took {elapsed:.1f} s"
    assert "Traceback" not in err
    assert spawn.containers() == set()
    outcome = Outcome(process.returncode, "", err, root / "r")
    assert [c["status"] for c in outcome.cells().values()] == ["cancelled", "cancelled"]
    suites = list(junitparser.JUnitXml.fromfile(str(root / "r" / "junit.xml")))
    assert len(suites) == 2


def _dockerd_pid() -> int:
    """The engine this machine's socket serves: its pid file, not `pidof dockerd`, which
    also finds the lab cluster's nested engines."""
    pidfile = Path("/var/run/docker.pid")
    if not pidfile.is_file():
        pytest.fail(f"{pidfile} is missing: no dockerd on this machine to freeze", pytrace=False)
    return int(pidfile.read_text().strip())


@pytest.mark.disruptive  # it freezes the shared engine for a few seconds
def test_second_sigint_forces_the_exit_when_cleanup_hangs(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1]), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(root / "r"))
    wait_running(docker_client, 1, process)
    (left,) = spawn.containers()
    (run_id,) = _run_ids(docker_client, {left})
    dockerd = _dockerd_pid()
    os.kill(dockerd, signal.SIGSTOP)  # the engine hangs: a graceful cleanup cannot end
    try:
        process.send_signal(signal.SIGINT)
        # the first signal was handled; cleanup is now stuck on the engine
        said = read_stderr_until(process, "cancelling", timeout=30)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1)  # the graceful cleanup is stuck
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = read_until_exit(process, timeout=30)  # not reaped yet: see its docstring
        elapsed = time.monotonic() - sent
    finally:
        os.kill(dockerd, signal.SIGCONT)
    assert elapsed < 2
    assert "SIGINT again: exiting now" in err
    assert spawn.containers() == {left}  # the forced exit left it ...
    assert process.wait(timeout=30) == 130, said + err
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0
    assert f"(run {run_id})" in cleaned.out  # ... clean took it
    assert spawn.containers() == set()
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0
    assert f"(run {run_id})" not in cleaned.out  # nothing of it left to remove
    assert spawn.containers() == set()


def test_kill_9_then_clean_and_the_next_run_sweeps(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    # Other runs on the shared engine may leave their own leftovers for clean and the
    # sweep to remove too: what is checked is that this test's killed runs are among
    # them, and that nothing of theirs is left.
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:2]), SLEEPER)
    # 1. kill -9, then `tagmatrix clean`. Each killed process is reaped only right
    # before the clean (or the run) that should remove its containers: until then,
    # other people's runs on this host take it for alive (see read_until_exit).
    process = spawn("run", "-f", str(path), "--reports", str(root / "r1"))
    wait_running(docker_client, 2, process)
    process.kill()
    read_until_exit(process, timeout=30)
    left = spawn.containers()
    assert len(left) == 2  # a killed process cannot clean up: its labels let us
    (run_id,) = _run_ids(docker_client, left)
    process.wait(timeout=30)
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0, cleaned.err
    removed = [line for line in cleaned.out.splitlines() if line.startswith("removed container")]
    assert sum(f"(run {run_id})" in line for line in removed) == 2, cleaned.out
    assert spawn.containers() == set()
    # 2. kill -9, then the next run sweeps the leftovers itself
    process = spawn("run", "-f", str(path), "--reports", str(root / "r2"))
    wait_running(docker_client, 2, process)
    process.kill()
    read_until_exit(process, timeout=30)
    left = spawn.containers()
    assert len(left) == 2
    (run_id,) = _run_ids(docker_client, left)
    quick = make_project(workspace.folder("quick"), lab_matrix(lab_minors[:1]),
                         {"test_ok.py": "def test_ok():\n    pass\n"})
    process.wait(timeout=30)
    outcome = run_project(quick, client=docker_client)
    swept = next((line for line in outcome.err.splitlines()
                  if "leftovers of dead runs" in line), "")
    count = re.search(r"removed (\d+) leftovers", swept)
    assert count, outcome.err
    assert int(count[1]) >= 2
    assert run_id in swept  # the line lists the runs it swept
    assert spawn.containers() == set()


def test_clean_never_touches_a_live_run(workspace: Workspace,
                                        docker_client: docker.DockerClient,
                                        lab_minors: list[str], spawn: Spawn) -> None:
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1], timeout=8), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(root / "r"))
    wait_running(docker_client, 1, process)
    (running,) = spawn.containers()
    (run_id,) = _run_ids(docker_client, {running})
    cleaned = tagmatrix("clean")
    kept = [line for line in cleaned.out.splitlines() if f"run {run_id} " in line]
    assert kept, cleaned.out
    assert all(line.startswith("kept container") and "still running" in line
               for line in kept), cleaned.out
    assert spawn.containers() == {running}
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err  # it ran to its own timeout, undisturbed
    assert spawn.containers() == set()


def test_secrets_reach_the_container_but_no_report(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    outcome = run_matrix(workspace.folder(), lab_matrix(lab_minors[:1], test_extra="""
        env:
          TOKEN: {from_env: TAGMATRIX_TEST_TOKEN}
    """), {
        "test_secret.py": f"""
            import hashlib
            import os

            def test_it_arrived():
                token = os.environ["TOKEN"].encode()
                assert hashlib.sha256(token).hexdigest() == "{digest}"

            def test_it_leaks_everywhere():
                print("stdout:", os.environ["TOKEN"])
                assert False, os.environ["TOKEN"]
        """}, client=docker_client, env={"TAGMATRIX_TEST_TOKEN": secret}, expect=1)
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["tests"]["passed"] == 1  # the secret reached the container
    assert cell["tests"]["failed"] == 1
    for report in outcome.reports.rglob("*"):
        if report.is_file():
            assert secret.encode() not in report.read_bytes(), report
    assert secret not in outcome.out + outcome.err
    assert "***" in (outcome.reports / "junit.xml").read_text()


def test_two_concurrent_runs_do_not_interfere(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"}
    paths = [make_project(workspace.folder(name), lab_matrix(lab_minors[:2]), tests)
             for name in ("a", "b")]
    processes = [spawn("run", "-f", str(p), "--reports", str(p.parent / "r")) for p in paths]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
    for path in paths:
        outcome = Outcome(0, "", "", path.parent / "r")
        assert [c["status"] for c in outcome.cells().values()] == ["passed", "passed"]
    run_ids = {Outcome(0, "", "", p.parent / "r").results()["run_id"] for p in paths}
    assert len(run_ids) == 2
    assert spawn.containers() == set()


def test_registry_rate_limit_is_retried(workspace: Workspace,
                                        docker_client: docker.DockerClient,
                                        lab_minors: list[str]) -> None:
    # one pull makes two manifest requests (HEAD, then GET): refuse both, once
    with FlakyRegistry("127.0.0.1:5000", fail_first=2) as front:
        path = make_project(workspace.folder(), lab_matrix(lab_minors[:1]).replace(
            "127.0.0.1:5000", front.address), {"test_ok.py": "def test_ok():\n    pass\n"})
        try:
            outcome = run_project(path, client=docker_client)
        finally:  # the base image under the front's name (its port is this test's own)
            remove_images(docker_client, lambda repository: repository.startswith(
                f"{front.address}/"))
        assert front.failures == 2
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "passed"
    assert [a["status"] for a in cell["attempts"]] == ["error", "passed"]
    assert "toomanyrequests: You have reached your pull rate limit" in \
        cell["attempts"][0]["reason"]


def test_a_1_gib_flood_keeps_memory_bounded(workspace: Workspace, lab_minors: list[str]) -> None:
    flood = ("import sys\nb = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"
             "for _ in range(1 << 20):\n    w(b)\nprint('THE' + ' END')\n")
    root = workspace.folder()
    path = make_project(root, lab_matrix(lab_minors[:1], command=["python", "-c", flood],
                                         extra="logs: {max_bytes: 20000000}\n"), {})
    wrapper = ("import resource, subprocess, sys\n"
               "code = subprocess.call(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "orchestrator",
                           "run", "-f", str(path), "--reports", str(root / "r")],
                          capture_output=True, text=True, timeout=600, check=False)
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    assert done.returncode == 0, done.stderr
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB"
    cell = Outcome(0, "", "", root / "r").cells()[f"{lab_minors[0]}-slim"]
    log_path = root / "r" / cell["log"]
    log = log_path.read_text()
    assert log_path.stat().st_size < 20_100_000
    assert "log capped at 20000000 bytes" in log
    assert "THE END" not in log  # past the cap ...
    junit = (root / "r" / "junit.xml").read_text()
    assert "THE END" in junit  # ... but every byte was read: the kept tail has it
    assert len(list(junitparser.JUnitXml.fromfile(str(root / "r" / "junit.xml")))) == 1
