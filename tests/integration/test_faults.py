"""One test per fault: hangs, build hangs, OOM, signals, kill -9, secrets, concurrency,
rate limits, a 1 GiB flood. Real engine, real registry, real processes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import junitparser
import pytest

from tests.integration.conftest import (
    Outcome,
    Spawn,
    lab_matrix,
    make_project,
    managed_containers,
    tagmatrix,
    wait_running,
)
from tests.integration.flaky_registry import FlakyRegistry

pytestmark = pytest.mark.docker

SLEEPER = {"test_sleep.py": """
    import sys
    import time

    def test_sleeps_forever():
        print("started", flush=True)
        sys.stdout.flush()
        time.sleep(100000)
"""}


def all_containers(client: docker.DockerClient) -> set[str]:
    return {str(c["Id"]) for c in client.api.containers(all=True)}


def test_hung_test_is_killed_at_its_deadline(tmp_path: Path, docker_client: docker.DockerClient,
                                             lab_minors: list[str]) -> None:
    # -s: the test's own print reaches the container's output before the hang
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], timeout=5,
                                             command="python -m pytest -q -s tests"), SLEEPER)
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        client=docker_client)
    assert outcome.code == 1
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "timeout"
    assert "exceeded the 5 s timeout" in cell["reason"]
    assert cell["run_s"] < 5 + 5  # gone within timeout + 5 s
    assert "started" in (outcome.reports / cell["log"]).read_text()  # the log is kept
    assert outcome.leftovers == set()


def test_build_that_hangs_is_stopped_at_the_build_timeout(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], extra="""
        build:
          dockerfile: Dockerfile
          timeout: 5
    """), {"test_ok.py": "def test_ok():\n    pass\n"})
    (tmp_path / "Dockerfile").write_text(
        "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN sleep 600\n")
    before = all_containers(docker_client)
    started = time.monotonic()
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    elapsed = time.monotonic() - started
    assert outcome.code == 1
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "error"
    assert cell["stage"] == "build"
    assert "build timed out after 5 s" in cell["reason"]
    assert elapsed < 5 + 15
    # the builder's intermediate container goes too (it carries no label of ours)
    deadline = time.monotonic() + 15
    while all_containers(docker_client) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all_containers(docker_client) - before == set()


def test_out_of_memory_is_an_error(tmp_path: Path, docker_client: docker.DockerClient,
                                   lab_minors: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], extra="""
        limits: {memory: 64m}
    """), {"test_hog.py": "def test_hog():\n    b = bytearray(400 * 1024 * 1024)\n"
                          "    assert len(b)\n"})
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        client=docker_client)
    assert outcome.code == 1
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "error"
    assert "out of memory" in cell["reason"]
    assert outcome.leftovers == set()


@pytest.mark.parametrize("signal_and_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_cleans_up_and_reports_within_7_5_s(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        signal_and_code: tuple[int, int], spawn: Spawn) -> None:
    signum, code = signal_and_code
    path = make_project(tmp_path, lab_matrix(lab_minors[:2]), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    wait_running(docker_client, 2)
    sent = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == code, err
    assert elapsed < 7.5, f"took {elapsed:.1f} s"
    assert "Traceback" not in err
    assert managed_containers(docker_client) == set()
    outcome = Outcome(process.returncode, "", err, tmp_path / "r")
    assert [c["status"] for c in outcome.cells().values()] == ["cancelled", "cancelled"]
    suites = list(junitparser.JUnitXml.fromfile(str(tmp_path / "r" / "junit.xml")))
    assert len(suites) == 2


def _dockerd_pid() -> int:
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.fail("no dockerd process on this machine to freeze", pytrace=False)
    return int(found.stdout.split()[0])


def test_second_sigint_forces_the_exit_when_cleanup_hangs(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1]), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    wait_running(docker_client, 1)
    dockerd = _dockerd_pid()
    os.kill(dockerd, signal.SIGSTOP)  # the engine hangs: a graceful cleanup cannot end
    try:
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        while "cancelling" not in process.stderr.readline():
            pass  # the first signal was handled; cleanup is now stuck on the engine
        time.sleep(1)
        assert process.poll() is None, "the graceful cleanup should be stuck"
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        os.kill(dockerd, signal.SIGCONT)
    assert process.returncode == 130
    assert elapsed < 2
    assert "SIGINT again: exiting now" in err
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0
    assert "removed container" in cleaned.out  # the forced exit left it; clean took it
    assert managed_containers(docker_client) == set()
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0
    assert managed_containers(docker_client) == set()


def test_kill_9_then_clean_and_the_next_run_sweeps(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:2]), SLEEPER)
    # 1. kill -9, then `tagmatrix clean`
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r1"))
    wait_running(docker_client, 2)
    process.kill()
    process.communicate(timeout=30)  # reaps it and closes the pipes
    left = managed_containers(docker_client)
    assert len(left) == 2  # a killed process cannot clean up: its labels let us
    cleaned = tagmatrix("clean")
    assert cleaned.code == 0, cleaned.err
    assert cleaned.out.count("removed container") == 2
    assert managed_containers(docker_client) == set()
    # 2. kill -9, then the next run sweeps the leftovers itself
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r2"))
    wait_running(docker_client, 2)
    process.kill()
    process.communicate(timeout=30)  # reaps it and closes the pipes
    quick = make_project(tmp_path / "quick", lab_matrix(lab_minors[:1]),
                         {"test_ok.py": "def test_ok():\n    pass\n"})
    outcome = tagmatrix("run", "-f", str(quick), "--reports", str(tmp_path / "r3"))
    assert outcome.code == 0, outcome.err
    assert "removed 2 leftovers of dead runs" in outcome.err
    assert managed_containers(docker_client) == set()


def test_clean_never_touches_a_live_run(tmp_path: Path, docker_client: docker.DockerClient,
                                        lab_minors: list[str],
        spawn: Spawn) -> None:
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], timeout=8), SLEEPER)
    process = spawn("run", "-f", str(path), "--reports", str(tmp_path / "r"))
    wait_running(docker_client, 1)
    cleaned = tagmatrix("clean")
    assert "still running" in cleaned.out
    assert len(managed_containers(docker_client)) == 1
    process.communicate(timeout=60)
    assert process.returncode == 1  # it ran to its own timeout, undisturbed
    assert managed_containers(docker_client) == set()


def test_secrets_reach_the_container_but_no_report(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], test_extra="""
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
        """})
    outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                        env={"TAGMATRIX_TEST_TOKEN": secret})
    assert outcome.code == 1, outcome.err
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["tests"]["passed"] == 1  # the secret reached the container
    assert cell["tests"]["failed"] == 1
    for report in (tmp_path / "r").rglob("*"):
        if report.is_file():
            assert secret.encode() not in report.read_bytes(), report
    assert secret not in outcome.out + outcome.err
    assert "***" in (tmp_path / "r" / "junit.xml").read_text()


def test_two_concurrent_runs_do_not_interfere(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str],
        spawn: Spawn) -> None:
    tests = {"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n"}
    paths = [make_project(tmp_path / name, lab_matrix(lab_minors[:2]), tests)
             for name in ("a", "b")]
    processes = [spawn("run", "-f", str(p), "--reports", str(p.parent / "r")) for p in paths]
    for process in processes:
        process.communicate(timeout=300)
        assert process.returncode == 0
    for path in paths:
        outcome = Outcome(0, "", "", path.parent / "r")
        assert [c["status"] for c in outcome.cells().values()] == ["passed", "passed"]
    run_ids = {Outcome(0, "", "", p.parent / "r").results()["run_id"] for p in paths}
    assert len(run_ids) == 2
    assert managed_containers(docker_client) == set()


def test_registry_rate_limit_is_retried(tmp_path: Path, docker_client: docker.DockerClient,
                                        lab_minors: list[str]) -> None:
    # one pull makes two manifest requests (HEAD, then GET): refuse both, once
    with FlakyRegistry("127.0.0.1:5000", fail_first=2) as front:
        path = make_project(tmp_path, lab_matrix(lab_minors[:1]).replace(
            "127.0.0.1:5000", front.address), {"test_ok.py": "def test_ok():\n    pass\n"})
        try:
            outcome = tagmatrix("run", "-f", str(path), "--reports", str(tmp_path / "r"),
                                client=docker_client)
        finally:
            for image in docker_client.images.list(name=f"{front.address}/library/python"):
                for tag in image.tags:
                    docker_client.images.remove(tag)
        assert front.failures == 2
    assert outcome.code == 0, outcome.err
    cell = outcome.cells()[f"{lab_minors[0]}-slim"]
    assert cell["status"] == "passed"
    assert [a["status"] for a in cell["attempts"]] == ["error", "passed"]
    assert "toomanyrequests: You have reached your pull rate limit" in \
        cell["attempts"][0]["reason"]
    assert outcome.leftovers == set()


def test_a_1_gib_flood_keeps_memory_bounded(tmp_path: Path, docker_client: docker.DockerClient,
                                            lab_minors: list[str]) -> None:
    flood = ("import sys\nb = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"
             "for _ in range(1 << 20):\n    w(b)\nprint('THE' + ' END')\n")
    path = make_project(tmp_path, lab_matrix(lab_minors[:1], command=["python", "-c", flood],
                                             extra="logs: {max_bytes: 20000000}\n"), {})
    wrapper = ("import resource, subprocess, sys\n"
               "code = subprocess.call(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "orchestrator",
                           "run", "-f", str(path), "--reports", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=600, check=False)
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    assert done.returncode == 0, done.stderr
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB"
    cell = Outcome(0, "", "", tmp_path / "r").cells()[f"{lab_minors[0]}-slim"]
    log_path = tmp_path / "r" / cell["log"]
    log = log_path.read_text()
    assert log_path.stat().st_size < 20_100_000
    assert "log capped at 20000000 bytes" in log
    assert "THE END" not in log  # past the cap ...
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert "THE END" in junit  # ... but every byte was read: the kept tail has it
    assert len(list(junitparser.JUnitXml.fromfile(str(tmp_path / "r" / "junit.xml")))) == 1
