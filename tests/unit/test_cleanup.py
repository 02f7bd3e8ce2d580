"""Which leftovers a clean removes: only those of dead runs, never a live run's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cleanup import decide, owner_alive, process_start
from orchestrator.engine import Leftover, LeftoverKind, RunContext
from orchestrator.labels import LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_PROJECT, LABEL_RUN


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


class _Janitor:
    """What an engine holds (a janitor for sweep; no Docker involved)."""

    name = "fake"

    def __init__(self, items: list[Leftover]) -> None:
        self.items = items
        self.removed: list[str] = []

    def kill_run(self, ctx: RunContext) -> int:
        raise AssertionError("not part of a sweep")

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        return [i for i in self.items if images or i.kind is not LeftoverKind.IMAGE]

    def remove_leftover(self, item: Leftover) -> None:
        self.removed.append(item.id)


def test_clean_images_keeps_the_images_of_a_run_that_is_still_building(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A building run has no container yet: only its live record says it uses its
    project's images."""
    from orchestrator.cleanup import sweep
    from orchestrator.liveruns import live_projects, registered

    monkeypatch.setenv("TAGMATRIX_CACHE_DIR", str(tmp_path))
    image = Leftover(LeftoverKind.IMAGE, "sha256:just-built",
                     labels={LABEL_PROJECT: "proj-a"})
    other = Leftover(LeftoverKind.IMAGE, "sha256:other", labels={LABEL_PROJECT: "proj-b"})
    with registered("20261128T000000Z-aaaaaa", "proj-a"):
        assert live_projects() == {"proj-a"}
        janitor = _Janitor([image, other])
        decision = sweep(janitor, images=True, project=None)
        assert [i.id for i in decision.remove] == ["sha256:other"]
        assert [(i.id, why) for i, why in decision.keep] == [
            ("sha256:just-built", "a live run of its project uses it")]
    assert live_projects() == set()  # the record goes with the run
    (tmp_path / "live" / f"uid-{os.getuid()}").mkdir(parents=True, exist_ok=True)
    stale = tmp_path / "live" / f"uid-{os.getuid()}" / "gone.json"
    stale.write_text(json.dumps({"project": "proj-a", LABEL_HOST: socket.gethostname(),
                                 LABEL_PID: str(dead_pid()), LABEL_PID_START: "1"}))
    assert live_projects() == set()
    assert not stale.exists()  # a dead run's record is removed by whoever reads it
