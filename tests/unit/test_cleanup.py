"""Which leftovers a clean removes: only those of dead runs, never a live run's."""

from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.cleanup import decide, owner_alive, process_start
from orchestrator.engine import Leftover, LeftoverKind
from orchestrator.labels import LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_RUN


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def labels(pid: int, *, host: str = "here", start: str | None = None,
           run: str = "r1") -> dict[str, str]:
    return {LABEL_RUN: run, LABEL_PID: str(pid), LABEL_HOST: host,
            LABEL_PID_START: process_start(pid) if start is None else start}


def test_owner_alive() -> None:
    me = os.getpid()
    assert owner_alive(labels(me), hostname="here") is True
    assert owner_alive(labels(dead_pid()), hostname="here") is False
    # a live PID with another start time is a reused PID: the owner is gone
    assert owner_alive(labels(me, start="1"), hostname="here") is False
    assert owner_alive(labels(me, host="elsewhere"), hostname="here") is None
    assert owner_alive({LABEL_RUN: "r", LABEL_HOST: "here", LABEL_PID: "x"},
                       hostname="here") is False


def test_decide_removes_only_dead_runs() -> None:
    live = Leftover(LeftoverKind.CONTAINER, "a", labels=labels(os.getpid(), run="live"))
    dead = Leftover(LeftoverKind.CONTAINER, "b", labels=labels(dead_pid(), run="dead"))
    remote = Leftover(LeftoverKind.CONTAINER, "c", labels=labels(1, host="ci-7", run="remote"))
    foreign = Leftover(LeftoverKind.CONTAINER, "d", labels={})
    decision = decide([live, dead, remote, foreign], hostname="here")
    assert decision.remove == (dead,)
    kept = {item.id: why for item, why in decision.keep}
    assert "still running" in kept["a"]
    assert "--all-hosts" in kept["c"]
    assert "not tied to a run" in kept["d"]
    assert decide([remote], hostname="here", all_hosts=True).remove == (remote,)
