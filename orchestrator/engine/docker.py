"""The Docker engine: a local or remote engine reached through the Docker SDK.

Containers are always detached, never ``auto_remove`` (wait/logs would race
removal), removed with ``force=True`` in ``finally`` whatever happened. The
job deadline is ours: ``wait()`` in short slices (its timeout raises a
ConnectionError and is not a job timeout), then kill. Output is pumped to the
cell log by a thread on its own client, shut down after exit plus a grace.
Result files are copied out with ``get_archive`` (works on exited containers,
and on remote engines, unlike bind mounts), size-capped, regular files only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import assert_never

import docker
import docker.errors
import requests

from ..celllog import CellLog
from ..errors import CellError, Stage
from ..jobs import MOUNT_DIR, WORKDIR, BuildSpec, Job
from ..labels import (
    LABEL_BUILD_KEY,
    LABEL_CELL,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_RUN,
    project_id,
)
from . import (
    Ending,
    EngineInfo,
    Execution,
    Leftover,
    LeftoverKind,
    PreparedImage,
    RunContext,
    Started,
)
from .bootstrap import container_command, container_env
from .dockerapi import Endpoint, Streams, Translator, connect
from .dockerfiles import ContainerFiles
from .dockerimage import ImageStore
from .logstream import LOG_CONFIG, Attachment, LogPump
from .mountcopy import MountCopies

log = logging.getLogger(__name__)

WAIT_SLICE = 1.0  # seconds per wait() call; bounds how late a deadline is noticed
LOG_STALL = 5.0  # after exit, the log stream is cut once it stops moving this long
LOG_DRAIN_MAX = 300.0  # ... and in any case after this long


class DockerEngine:
    """One Docker engine (local socket, DOCKER_HOST, or a remote URL with TLS)."""

    def __init__(self, name: str = "local", *, endpoint: Endpoint | None = None,
                 workers: int = 4, pull: str = "missing") -> None:
        self.name = name
        self.endpoint = endpoint or Endpoint()
        self.pull = pull
        # A pool at least as large as the workers avoids "Connection pool is full".
        self.client, params = connect(self.endpoint, pool_size=max(workers * 2, 10))
        self.api: docker.APIClient = self.client.api
        self.errors = Translator(self.api, self.endpoint.describe())
        self.streams = Streams(params, self.api.api_version)
        self.images = ImageStore(self.api, self.streams, self.errors)
        self.mounts = MountCopies(self.images)
        self.files = ContainerFiles(self.api)
        self._info: EngineInfo | None = None
        self._live: dict[str, _Container] = {}
        self._live_lock = threading.Lock()

    def info(self) -> EngineInfo:
        if self._info is None:
            with self.errors.errors(Stage.ENGINE, "engine info"):
                data = self.api.info()
            with self.errors.errors(Stage.ENGINE, "engine version"):
                api_version = str(self.api.version().get("ApiVersion", ""))
            self._info = EngineInfo(
                name=self.name,
                api_version=api_version,
                cpus=int(data.get("NCPU") or 0),
                os=str(data.get("OSType", "linux")),
                arch=str(data.get("Architecture", "")),
                version=str(data.get("ServerVersion", "")),
                node=str(data.get("Name", "")),
                description=self.endpoint.describe(),
            )
        return self._info

    # -- images --------------------------------------------------------------------------------

    def prepare(self, job: Job, spec: BuildSpec | None, log: CellLog,
                ctx: RunContext) -> PreparedImage:
        started = time.monotonic()
        base = self.images.base(job.base_image, self.pull, log)
        log.note(f"base image {base.reference} id {base.id[:19]}"
                 + (f" digest {base.digest}" if base.digest else ""))
        if spec is None:  # mount mode: nothing built; the snapshot is unpacked to bind
            folder, digest = self.mounts.get(job.mount or Path(), job.context_rules)
            return PreparedImage(reference=base.reference, id=base.id, base=base,
                                 size=base.size, workdir=WORKDIR[job.platform],
                                 project_digest=digest, mount=str(folder))
        labels = {LABEL_MANAGED: "true", LABEL_BUILD_KEY: spec.key,
                  LABEL_PROJECT: project_id(spec.context)}
        try:
            image_id, cached = self._build(spec, log, labels, ctx)
        except CellError as exc:
            exc.image_digest = exc.image_digest or base.digest  # the reports show it
            raise
        data = self.images.inspect_built(image_id)
        elapsed = time.monotonic() - started
        log.note(f"built {spec.tag} ({image_id[:19]}) in {elapsed:.1f} s"
                 + (" (all steps cached)" if cached else ""))
        return PreparedImage(
            reference=image_id, id=image_id, base=base, size=int(data.get("Size") or 0),
            workdir=str((data.get("Config") or {}).get("WorkingDir") or "/"),
            build_s=elapsed, cached=cached,
            project_digest=self.images.fingerprint(spec.context, spec.context_rules))

    def _build(self, spec: BuildSpec, log: CellLog, labels: dict[str, str],
               ctx: RunContext) -> tuple[str, bool]:
        project_image = ""
        if spec.project is not None:
            built = spec.project
            project_image, name = self.images.project(
                built, ctx.open_log, {LABEL_MANAGED: "true",
                                      LABEL_PROJECT: project_id(built.context)}, ctx.cancel,
                lambda project_log: self.images.base(built.base_image, self.pull, project_log))
            log.note(f"project image {project_image[:19]} ({built.kind}; its build: logs/{name})")
        # The image a tag pointed at before is not removed here: another run of the
        # project (another branch) may be about to start a container from it;
        # `tagmatrix clean --images` removes a project's images when no run uses them.
        return self.images.build(spec, log, labels, ctx.cancel, project_image)

    # -- containers ----------------------------------------------------------------------------

    def _create(self, job: Job, image: PreparedImage, ctx: RunContext) -> str:
        binds: dict[str, Mapping[str, str]] | None = None
        if job.mount is not None:
            # the run's unpacked snapshot (engine/mountcopy.py), never the checkout;
            # read-only, and the bootstrap copies it to the workdir
            binds = {image.mount or str(job.mount): {"bind": MOUNT_DIR[job.platform],
                                                     "mode": "ro"}}
        with self.errors.errors(Stage.RUN, "create container"):
            # Never privileged, never the Docker socket; no privilege escalation
            # (setuid) inside; capabilities tests do not need dropped; memory without
            # swap on top so an OOM is an OOM.
            limits = job.limits
            host_config = self.api.create_host_config(
                binds=binds, privileged=False, security_opt=["no-new-privileges:true"],
                cap_drop=list(limits.cap_drop), cap_add=list(limits.cap_add) or None,
                network_mode=str(job.network),
                mem_limit=limits.memory, memswap_limit=limits.memory,
                nano_cpus=limits.nano_cpus, pids_limit=limits.pids,
                log_config=LOG_CONFIG[job.platform])
            container = self.api.create_container(
                image.reference, command=container_command(),
                environment=container_env(job, gate=True),
                labels={**ctx.labels, LABEL_CELL: job.id}, host_config=host_config,
                working_dir=WORKDIR[job.platform] if job.mount is not None else None,
                detach=True, tty=False, stdin_open=True)
        return str(container["Id"])

    def start(self, job: Job, image: PreparedImage, log: CellLog,
              ctx: RunContext) -> Started:
        """Create and start the container ahead of its turn: its bootstrap waits for
        "go" on stdin, so the engine's start-up cost overlaps the cell before."""
        steps = _Steps(job.id)
        cid = self._create(job, image, ctx)
        steps.mark("create")
        pump: LogPump | None = None
        try:
            log.section(f"run: {' '.join(job.command)}")
            log.restart_excerpt()
            with self.errors.errors(Stage.RUN, "attach to the container"):
                # attached before start: not a byte of output is missed
                attachment = Attachment(self.api, cid, stdin=True)
                pump = LogPump(attachment, cid, log)
            pump.start()
            with self.errors.errors(Stage.RUN, "start container"):
                self.api.start(cid)
            steps.mark("start")
        except BaseException:
            if pump is not None:
                pump.cut()
            self.remove_container(cid)
            raise
        with self._live_lock:
            self._live[cid] = _Container(attachment=attachment, pump=pump, steps=steps)
        return Started(id=cid, job=job, image=image)

    def go(self, started: Started) -> None:
        live = self._live[started.id]
        live.steps.mark("slot")
        with self.errors.errors(Stage.RUN, "start the tests"):
            live.attachment.send(b"go\n")
        live.began = time.monotonic()

    def wait(self, started: Started, timeout: float, ctx: RunContext) -> Ending:
        live = self._live[started.id]
        code, timed_out, cancelled = self._wait(started.id, live.began + timeout, ctx)
        live.steps.mark("wait")
        return Ending(exit_code=code, timed_out=timed_out, cancelled=cancelled,
                      run_s=time.monotonic() - live.began)

    def collect(self, started: Started, ending: Ending, log: CellLog) -> Execution:
        live = self._live[started.id]
        live.pump.drain(LOG_STALL, LOG_DRAIN_MAX)
        live.steps.mark("drain")
        with self.errors.errors(Stage.RUN, "inspect container"):
            state = self.api.inspect_container(started.id)["State"]
        live.steps.mark("inspect")
        found = self.files.collect(started, state, ending)
        live.steps.mark("collect")
        return replace(found, node=self.info().node)

    def remove(self, started: Started) -> None:
        with self._live_lock:
            live = self._live.pop(started.id, None)
        if live is not None:
            live.pump.cut()
        self.remove_container(started.id)
        if live is not None:
            live.steps.mark("remove")
            live.steps.report()

    def _wait(self, cid: str, deadline: float, ctx: RunContext) -> tuple[int | None, bool, bool]:
        while True:
            if ctx.cancel.is_set():
                self._kill(cid)
                return self._final_code(cid), False, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(cid)
                return self._final_code(cid), True, False
            try:
                # requests takes a float timeout; the stubs say int
                result = self.api.wait(cid, timeout=max(min(remaining, WAIT_SLICE), 0.05))  # type: ignore[arg-type]
                # killed by the cancellation (kill_run) while we waited: cancelled, not 137
                return int(result.get("StatusCode", -1)), False, ctx.cancel.is_set()
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                # docker-py reports a wait timeout as ConnectionError: tell it from a lost engine.
                if not self.errors.alive():
                    raise self.errors.lost(exc) from exc
            except docker.errors.APIError as exc:
                raise CellError(f"waiting for the container: {exc.explanation}",
                                stage=Stage.RUN) from exc

    def _final_code(self, cid: str) -> int | None:
        try:
            return int(self.api.wait(cid, timeout=10).get("StatusCode", -1))
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return None

    def _kill(self, cid: str) -> None:
        try:
            self.api.kill(cid)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.debug("kill %s: %s", cid[:12], exc)  # already exited

    def remove_container(self, cid: str) -> None:
        try:
            self.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass  # already gone
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                return  # the cancellation's cleanup got there first
            log.warning("could not remove container %s: %s", cid[:12], exc)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not remove container %s: %s", cid[:12], exc)

    # -- the whole run -------------------------------------------------------------------------

    def kill_run(self, ctx: RunContext) -> int:
        """Kill and remove every container labelled with this run; end open streams."""
        self.streams.abort_all()
        removed = 0
        try:
            found = self.api.containers(all=True, filters={"label": f"{LABEL_RUN}={ctx.run_id}"})
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("cannot list this run's containers: %s", exc)
            return 0
        for container in found:
            self.remove_container(str(container["Id"]))
            removed += 1
        return removed

    def leftovers(self, *, images: bool = False) -> list[Leftover]:
        found: list[Leftover] = []
        with self.errors.errors(Stage.ENGINE, "list leftovers"):
            for item in self.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
                names = item.get("Names") or [""]
                found.append(Leftover(LeftoverKind.CONTAINER, str(item["Id"]),
                                      names[0].lstrip("/"), dict(item.get("Labels") or {})))
            if images:
                for item in self.api.images(filters={"label": f"{LABEL_MANAGED}=true"}):
                    tags = item.get("RepoTags") or [""]
                    found.append(Leftover(LeftoverKind.IMAGE, str(item["Id"]), tags[0],
                                          dict(item.get("Labels") or {})))
        return found

    def remove_leftover(self, item: Leftover) -> None:
        match item.kind:
            case LeftoverKind.CONTAINER:
                self.remove_container(item.id)
            case LeftoverKind.IMAGE:
                try:  # never forced: an image a container still uses stays
                    self.api.remove_image(item.id)
                except (docker.errors.DockerException,
                        requests.exceptions.RequestException) as exc:
                    log.warning("kept image %s: %s", item.name or item.id[:19], exc)
            case LeftoverKind.SERVICE:
                raise ValueError(f"a Docker engine has no services ({item.name})")
            case _:
                assert_never(item.kind)

    def close(self) -> None:
        self.mounts.close()
        self.images.close()
        self.client.close()


@dataclass
class _Container:
    """A started container's live parts."""

    attachment: Attachment
    pump: LogPump
    steps: _Steps
    began: float = 0.0


class _Steps:
    """Wall time of each step of a container's life, logged at DEBUG: where the
    per-cell overhead goes (see benchmarks/bench.py)."""

    def __init__(self, cell: str) -> None:
        self.cell = cell
        self.last = time.monotonic()
        self.times: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        now = time.monotonic()
        self.times.append((step, now - self.last))
        self.last = now

    def report(self) -> None:
        log.debug("cell %s steps: %s", self.cell,
                  " ".join(f"{name}={seconds * 1000:.0f}ms" for name, seconds in self.times))
