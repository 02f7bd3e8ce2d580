"""The runs alive on this host and their projects, for `tagmatrix clean --images`.

A run's containers and services say it is alive (their labels name its process), but
a run that is still building has none yet, and the image it just built would look
unused. Each run therefore leaves a small file in the user's cache folder while it
lives: its project, process and the process's start time (a reused PID is not the
run). A file whose process is gone is stale and removed by whoever reads it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .catalogue import cache_dir
from .cleanup import owner_alive, process_start
from .labels import LABEL_HOST, LABEL_PID, LABEL_PID_START

log = logging.getLogger(__name__)


def _folder() -> Path:
    return cache_dir() / "live" / f"uid-{os.getuid()}"


@contextmanager
def registered(run_id: str, project: str) -> Iterator[None]:
    """While the block runs, this run counts as a live run of ``project``."""
    path = _folder() / f"{run_id}.json"
    record = {"project": project, LABEL_HOST: socket.gethostname(),
              LABEL_PID: str(os.getpid()), LABEL_PID_START: process_start(os.getpid())}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(record))
    except OSError as exc:  # a cache we cannot write only weakens clean's caution
        log.warning("cannot record the run as live (%s): a concurrent `clean --images` "
                    "may not see it while it builds", exc)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def live_projects() -> set[str]:
    """Projects with a run alive on this host (stale records are removed)."""
    found: set[str] = set()
    try:
        records = list(_folder().glob("*.json"))
    except OSError:
        return found
    for path in records:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        labels = {k: str(v) for k, v in record.items()}
        alive = owner_alive(labels)
        if alive:
            found.add(labels.get("project", ""))
        elif alive is False:  # None: another host's (a shared home); not ours to judge
            path.unlink(missing_ok=True)
    return found
