"""What to remove after a crash: objects of runs whose process is gone.

Everything tagmatrix creates carries labels: the run id, the owner's host,
PID and the PID's start time (so a reused PID is not mistaken for the live
owner). `tagmatrix clean` and the sweep at the start of every run remove the
objects of dead runs of this host; objects without our labels, and those of a
live run, are never touched. Runs of other hosts cannot be checked from here:
they are kept unless ``--all-hosts`` is given.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .engine import Janitor, Leftover, LeftoverKind
from .labels import LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_PROJECT


def process_start(pid: int) -> str:
    """The start time of ``pid`` (clock ticks since boot, Linux); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


def owner_alive(labels: dict[str, str], *, hostname: str | None = None) -> bool | None:
    """Whether the run that labelled an object still runs; None when it cannot be told
    from here (another host)."""
    host = hostname or socket.gethostname()
    if labels.get(LABEL_HOST) != host:
        return None
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    started = labels.get(LABEL_PID_START, "")
    return not (started and started != process_start(pid))


@dataclass(frozen=True)
class Decision:
    remove: tuple[Leftover, ...]
    keep: tuple[tuple[Leftover, str], ...]  # with the reason


def decide(leftovers: list[Leftover], *, all_hosts: bool = False,
           hostname: str | None = None) -> Decision:
    """Which leftovers to remove: those of dead runs (and of other hosts if asked)."""
    remove: list[Leftover] = []
    keep: list[tuple[Leftover, str]] = []
    for item in leftovers:
        if not item.run_id:
            keep.append((item, "not tied to a run (a cached build image)"))
            continue
        alive = owner_alive(item.labels, hostname=hostname)
        if alive:
            keep.append((item, f"run {item.run_id} is still running "
                               f"(pid {item.labels.get(LABEL_PID)})"))
        elif alive is None and not all_hosts:
            keep.append((item, f"run {item.run_id} belongs to host "
                               f"{item.labels.get(LABEL_HOST)!r} (use --all-hosts)"))
        else:
            remove.append(item)
    return Decision(tuple(remove), tuple(keep))


def sweep(janitor: Janitor, *, all_hosts: bool = False, images: bool = False,
          project: str | None = None, dry_run: bool = False) -> Decision:
    """Remove (or, ``dry_run``, only decide) what dead runs left on an engine: the
    start of every run and `tagmatrix clean` share this. ``images``: the build cache
    too — of ``project`` only (its label), or of every project when None — except the
    images of a project a live run is using (and the engine keeps any image a
    container uses)."""
    found = janitor.leftovers(images=images)
    decision = decide([i for i in found if i.kind is not LeftoverKind.IMAGE],
                      all_hosts=all_hosts)
    live = {item.labels.get(LABEL_PROJECT) for item, why in decision.keep
            if item.run_id and "still running" in why}
    if images:  # and the runs of this host that have no container yet (still building)
        from .liveruns import live_projects

        live |= live_projects()
    remove: list[Leftover] = list(decision.remove)
    keep = list(decision.keep)
    for item in (i for i in found if i.kind is LeftoverKind.IMAGE):
        owner = item.labels.get(LABEL_PROJECT)
        if project is not None and owner != project:
            continue  # another project's build cache: not ours to touch
        if owner in live:
            keep.append((item, "a live run of its project uses it"))
        else:
            remove.append(item)
    if not dry_run:
        for item in remove:  # services first: they own their tasks' containers
            janitor.remove_leftover(item)
    return Decision(tuple(remove), tuple(keep))
