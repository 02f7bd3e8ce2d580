"""How the Swarm engine reads a task: states as the lab cluster reported them (Docker
20.10.24, recorded in README "Engines"), no Docker here."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine.swarm_tasks import (
    NAME_MAX,
    Node,
    Phase,
    Progress,
    capacity,
    died_unfinished,
    judge,
    seconds_between,
    service_name,
)
from orchestrator.errors import Stage

IMAGE = "127.0.0.1:5000/tagmatrix/sample:3.12-slim-abc@sha256:1234"
REGISTRY = "127.0.0.1:5000"


def node(state: str = "ready", *, availability: str = "active", message: str = "",
         labels: dict[str, str] | None = None, nano: int = 2_000_000_000,
         hostname: str = "tagmatrix-lab-node-1", os: str = "linux") -> Node:
    return Node.of({"ID": f"id-{hostname}",
                    "Spec": {"Availability": availability, "Labels": labels or {}},
                    "Status": {"State": state, "Message": message},
                    "Description": {"Hostname": hostname, "Platform": {"OS": os},
                                    "Resources": {"NanoCPUs": nano}}})


def task(state: str, *, desired: str = "running", err: str = "", code: int | None = None,
         stamp: str = "2026-11-28T06:40:44.102499081Z") -> dict[str, Any]:
    status: dict[str, Any] = {"State": state, "Timestamp": stamp}
    if err:
        status["Err"] = err
    if code is not None:
        status["ContainerStatus"] = {"ContainerID": "c0ffee", "ExitCode": code}
    return {"ID": "t1", "NodeID": "id-tagmatrix-lab-node-1", "DesiredState": desired,
            "Status": status}


def read(t: dict[str, Any], n: Node | None = None) -> Any:
    return judge(t, n if n is not None else node(), image=IMAGE, registry=REGISTRY)


# -- service names --------------------------------------------------------------------------

def test_a_plain_cell_id_is_kept_readable() -> None:
    assert service_name("slim", "20261128T063612Z-abc123", 3) == "tagmatrix-slim-abc123-3"


def test_long_cell_ids_that_share_their_head_get_different_names() -> None:
    # both would have been cut to the same 63 characters, dropping the run id
    first = service_name("3.12-slim-" + "x" * 80 + "-one", "20261128T063612Z-abc123", 1)
    second = service_name("3.12-slim-" + "x" * 80 + "-two", "20261128T063612Z-abc123", 1)
    assert first != second
    assert len(first) <= NAME_MAX
    assert len(second) <= NAME_MAX
    assert first.endswith("-abc123-1")
    assert first.startswith("tagmatrix-3-12-slim-x")


def test_ids_that_differ_only_in_characters_a_name_cannot_hold_get_different_names() -> None:
    dotted = service_name("3.12-slim", "r-abc123", 1)
    dashed = service_name("3-12-slim", "r-abc123", 1)
    assert dotted != dashed
    assert dashed == "tagmatrix-3-12-slim-abc123-1"


@pytest.mark.parametrize("cell", ["a", "3.13-slim,numpy=2", "é" * 70, "-", "x" * 200])
def test_every_name_is_a_valid_service_name(cell: str) -> None:
    name = service_name(cell, "20261128T063612Z-abc123", 12)
    assert len(name) <= NAME_MAX
    assert name[0].isalnum()
    assert name[-1].isalnum()
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in name)
    assert "--" not in name


# -- nodes and capacity -------------------------------------------------------------------

def test_capacity_counts_ready_active_nodes_by_label_else_cpus() -> None:
    nodes = [node(hostname="vm"),  # 2 CPUs, no label
             node(hostname="w1", labels={"org.tagmatrix.parallel": "1"}),
             node(hostname="w2", labels={"org.tagmatrix.parallel": "3"}),
             node("down", hostname="w3"),
             node(hostname="w4", availability="drain"),
             node(hostname="w5", labels={"org.tagmatrix.parallel": "many"})]  # ignored label
    assert capacity(nodes) == 2 + 1 + 3 + 2


def test_a_node_reports_at_least_one_cpu() -> None:
    assert node(nano=500_000_000).capacity == 1
    assert capacity([]) == 0


# -- readings -----------------------------------------------------------------------------

def test_complete_is_the_end_with_its_exit_code() -> None:
    reading = read(task("complete", desired="shutdown", code=0))
    assert (reading.phase, reading.exit_code) == (Phase.ENDED, 0)


def test_a_failing_test_is_a_result_not_a_fault() -> None:
    reading = read(task("failed", desired="shutdown", err="task: non-zero exit (1)", code=1))
    assert (reading.phase, reading.exit_code, reading.error) == (Phase.ENDED, 1, None)


def test_a_node_that_cannot_pull_is_a_pull_error_naming_the_node_and_the_fix() -> None:
    reading = read(task("rejected", desired="shutdown", err=f"No such image: {IMAGE}"))
    assert reading.phase is Phase.FAULT
    assert reading.error is not None
    assert reading.error.stage is Stage.PULL
    assert not reading.error.retryable
    assert reading.error.message.startswith(
        f"node tagmatrix-lab-node-1 cannot pull {IMAGE}: No such image (fix: ")
    assert "insecure-registries" in reading.error.message


def test_other_rejections_are_run_errors() -> None:
    reading = read(task("rejected", err="invalid mount config for type \"bind\""))
    assert reading.error is not None
    assert reading.error.stage is Stage.RUN


def test_a_task_shut_down_while_its_node_is_down_is_lost_and_retryable() -> None:
    # docker kill of a worker: 12 s later the node is down, the task still "running"
    reading = read(task("running", desired="shutdown", code=0),
                   node("down", message="heartbeat failure"))
    assert reading.phase is Phase.FAULT
    assert reading.error is not None
    assert reading.error.stage is Stage.ENGINE
    assert reading.error.retryable
    assert "node tagmatrix-lab-node-1 was lost" in reading.error.message
    assert "heartbeat failure" in reading.error.message


def test_a_down_node_is_lost_even_before_the_swarm_shuts_the_task_down() -> None:
    reading = read(task("running"), node("down", message="heartbeat failure"))
    assert reading.error is not None
    assert reading.error.stage is Stage.ENGINE


def test_a_drained_node_is_lost_too() -> None:
    reading = read(task("running", desired="shutdown"), node(availability="drain"))
    assert reading.error is not None
    assert reading.error.retryable
    assert "availability drain" in reading.error.message


def test_a_task_rejected_because_its_node_went_away_is_lost() -> None:
    # a worker killed while its task ran: the task became "rejected", not "shutdown"
    reading = read(task("rejected", desired="shutdown",
                        err="assigned node no longer meets constraints"),
                   node("down", message="heartbeat failure"))
    assert reading.error is not None
    assert reading.error.stage is Stage.ENGINE
    assert reading.error.retryable


def test_a_container_gone_with_its_engine_is_lost_not_a_result() -> None:
    # a worker's dockerd stopped and started again: failed, exit code 0, no container
    reading = read(task("failed", desired="shutdown",
                        err="No such container: tagmatrix-x.1.abc", code=0))
    assert reading.phase is Phase.FAULT
    assert reading.error is not None
    assert reading.error.stage is Stage.ENGINE
    assert reading.error.retryable


def test_exit_255_without_results_is_a_lost_node_but_other_exits_are_results() -> None:
    # a worker killed and started again within its heartbeat timeout is never "down"
    died = died_unfinished(task("failed", err="task: non-zero exit (255)", code=255), node())
    assert died is not None
    assert died.stage is Stage.ENGINE
    assert died.retryable
    assert died_unfinished(task("failed", err="task: non-zero exit (1)", code=1), node()) \
        is None
    assert died_unfinished(task("complete", code=0), node()) is None


@pytest.mark.parametrize("state", ["shutdown", "orphaned", "remove"])
def test_a_task_stopped_by_the_swarm_is_lost(state: str) -> None:
    reading = read(task(state, desired="shutdown"))
    assert reading.error is not None
    assert reading.error.stage is Stage.ENGINE


def test_waiting_for_room_is_a_wait_but_no_matching_node_is_an_error() -> None:
    room = read(task("pending", err="no suitable node (insufficient resources on 3 nodes)"),
                None)
    assert room.phase is Phase.WAITING
    nowhere = read(task("pending", err="no suitable node (scheduling constraints not "
                                       "satisfied on 3 nodes)"), None)
    assert nowhere.error is not None
    assert nowhere.error.stage is Stage.RUN


def test_an_unsure_node_is_not_lost_at_once() -> None:
    assert read(task("running"), node("unknown")).phase is Phase.UNSURE


@pytest.mark.parametrize(("state", "phase"), [("assigned", Phase.PREPARING),
                                              ("preparing", Phase.PREPARING),
                                              ("starting", Phase.RUNNING),
                                              ("running", Phase.RUNNING),
                                              ("new", Phase.WAITING)])
def test_phases(state: str, phase: Phase) -> None:
    assert read(task(state)).phase is phase


# -- progress and bounds --------------------------------------------------------------------

def at(phase: Phase, stamp: str) -> Any:
    from orchestrator.engine.swarm_tasks import Reading
    return Reading(phase=phase, timestamp=stamp)


def test_the_pull_time_comes_from_the_swarms_timestamps() -> None:
    progress = Progress(began=100.0, timeout=60)
    progress.see(at(Phase.PREPARING, "2026-11-28T06:40:43.783786256Z"), 100.1)
    progress.see(at(Phase.PREPARING, "2026-11-28T06:40:43.783786256Z"), 101.0)
    progress.see(at(Phase.RUNNING, "2026-11-28T06:40:46.102499081Z"), 103.0)
    assert progress.pull_s == pytest.approx(2.318713, abs=1e-5)
    assert progress.run_s(110.0) == pytest.approx(7.0)


def test_no_pull_time_when_the_preparation_was_not_seen() -> None:
    progress = Progress(began=0.0, timeout=60)
    progress.see(at(Phase.RUNNING, "2026-11-28T06:40:46Z"), 1.0)
    assert progress.pull_s == 0.0


def test_a_task_that_ran_between_two_readings_has_no_pull_time_and_runs_from_its_go() -> None:
    progress = Progress(began=10.0, timeout=60)
    progress.see(at(Phase.WAITING, "2026-11-28T06:40:43Z"), 10.1)
    progress.see(at(Phase.ENDED, "2026-11-28T06:40:44Z"), 10.5)
    assert progress.pull_s == 0.0
    assert progress.run_s(10.5) == pytest.approx(0.5)


def test_the_timeout_counts_from_the_start_on_the_node_not_the_pull() -> None:
    progress = Progress(began=0.0, timeout=10)
    progress.see(at(Phase.PREPARING, "2026-11-28T06:40:43Z"), 0.5)
    assert not progress.timed_out(50.0)  # still pulling: the pull bound applies
    progress.see(at(Phase.RUNNING, "2026-11-28T06:41:33Z"), 50.0)
    assert not progress.timed_out(59.0)
    assert progress.timed_out(60.0)


def test_a_pull_that_never_ends_is_bounded() -> None:
    progress = Progress(began=0.0, timeout=3600, prepare_limit=300)
    progress.see(at(Phase.PREPARING, "2026-11-28T06:40:43Z"), 1.0)
    assert progress.overdue(300.0, node(), IMAGE, REGISTRY) is None
    error = progress.overdue(301.0, node(), IMAGE, REGISTRY)
    assert error is not None
    assert error.stage is Stage.PULL
    assert "tagmatrix-lab-node-1" in error.message


def test_an_unsure_node_is_lost_after_its_limit_and_forgiven_when_it_is_back() -> None:
    progress = Progress(began=0.0, timeout=3600, unsure_limit=60)
    progress.see(at(Phase.UNSURE, ""), 1.0)
    progress.see(at(Phase.RUNNING, ""), 30.0)  # back in time
    progress.see(at(Phase.UNSURE, ""), 40.0)
    assert progress.overdue(99.0, node("unknown"), IMAGE, REGISTRY) is None
    error = progress.overdue(100.0, node("unknown"), IMAGE, REGISTRY)
    assert error is not None
    assert error.stage is Stage.ENGINE
    assert error.retryable


def test_a_task_no_node_takes_fails_after_the_cells_timeout() -> None:
    progress = Progress(began=0.0, timeout=30)
    progress.see(at(Phase.WAITING, ""), 1.0)
    assert progress.overdue(29.0, None, IMAGE, REGISTRY) is None
    error = progress.overdue(30.0, None, IMAGE, REGISTRY)
    assert error is not None
    assert error.stage is Stage.RUN


def test_timestamps_with_nanoseconds() -> None:
    assert seconds_between("2026-11-28T06:40:43.999999999Z",
                           "2026-11-28T06:40:44.5Z") == pytest.approx(0.500001)
    assert seconds_between("2026-11-28T06:40:43Z", "2026-11-28T06:40:44Z") == 1.0
    assert seconds_between("", "2026-11-28T06:40:44Z") == 0.0
