"""Result files copied out of a stopped container (``get_archive``), safely and cheaply.

``get_archive`` works on exited containers and on remote engines (no bind
mounts needed); each call costs the engine a mount of the container's
filesystem (about 60 ms here), so tagmatrix's own folder (the interpreter
record and pytest's JUnit) comes out in one call. Sizes are capped while
reading, and only regular files are accepted: a symlink planted by a test
cannot make us read anything else.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import docker
import docker.errors
import requests

from ..errors import CellError, Stage
from . import Ending, Execution, Started
from .bootstrap import SETUP_FAILED_EXIT, WARNINGS_FILE
from .records import interpreter_of, packages_of

_MODE_DIR = 1 << 31  # Go's os.FileMode bits in get_archive's stat
_MODE_SYMLINK = 1 << 27
TAR_SLACK = 1024 * 1024  # tar headers and padding around the payload
MAX_RESULT_FILE = 64 * 1024 * 1024


class TooLarge(CellError):
    """The archive passed its cap while it was being read."""


class ContainerFiles:
    """Copies files out of containers of one engine."""

    def __init__(self, api: docker.APIClient) -> None:
        self.api = api

    def _archive(self, cid: str, path: str) -> tuple[Iterator[bytes], dict[str, int]] | None:
        try:
            chunks, stat = self.api.get_archive(cid, path)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise CellError(f"copying {path} out of the container: {exc}", stage=Stage.RESULTS) \
                from exc
        return chunks, stat

    @staticmethod
    def _read(chunks: Iterator[bytes], path: str, cap: int) -> io.BytesIO:
        buffer = io.BytesIO()
        for chunk in chunks:
            buffer.write(chunk)
            if buffer.tell() > cap + TAR_SLACK:
                raise TooLarge(f"{path} is larger than the {cap}-byte cap", stage=Stage.RESULTS)
        buffer.seek(0)
        return buffer

    def file(self, cid: str, path: str, cap: int) -> bytes | None:
        """One regular file, or None if absent."""
        found = self._archive(cid, path)
        if found is None:
            return None
        chunks, stat = found
        mode = int(stat.get("mode", 0))
        if mode & (_MODE_DIR | _MODE_SYMLINK):
            raise CellError(f"{path} in the container is not a regular file", stage=Stage.RESULTS)
        if int(stat.get("size", 0)) > cap:
            raise TooLarge(f"{path} is {stat.get('size')} bytes, over the {cap}-byte cap",
                           stage=Stage.RESULTS)
        with tarfile.open(fileobj=self._read(chunks, path, cap)) as archive:
            member = archive.next()
            if member is None or not member.isfile():
                raise CellError(f"{path} in the container is not a regular file",
                                stage=Stage.RESULTS)
            extracted = archive.extractfile(member)
            return extracted.read() if extracted else b""

    def folder(self, cid: str, path: str, cap: int) -> dict[str, bytes]:
        """The regular files directly in a folder, by name (links and folders skipped);
        {} if the folder does not exist. :class:`TooLarge` past ``cap`` bytes in all."""
        found = self._archive(cid, path)
        if found is None:
            return {}
        chunks, _ = found
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=self._read(chunks, path, cap)) as archive:
            for member in archive:
                parts = PurePosixPath(member.name.replace("\\", "/")).parts
                if len(parts) != 2 or not member.isfile():
                    continue
                extracted = archive.extractfile(member)
                files[parts[1]] = extracted.read() if extracted else b""
        return files

    def collect(self, started: Started, state: dict[str, Any], ending: Ending) -> Execution:
        """The results of a container that ran to its end or its deadline: one
        get_archive of tagmatrix's folder (the bootstrap's records, the setup status,
        pytest's JUnit), or the user's JUnit path when the command writes its own."""
        job, cid = started.job, started.id
        folder = job.container_dir
        junit, junit_error = None, ""
        try:
            files = self.folder(cid, folder, MAX_RESULT_FILE)
        except TooLarge as exc:
            junit_error = exc.message
            files = {"interpreter.json": self.file(
                cid, f"{folder}/interpreter.json", 1024 * 1024) or b""}
        interpreter, tests_started = interpreter_of(files.get("interpreter.json", b""))
        packages, install = packages_of(files.get("packages.json", b""), job.install_step)
        setup_failed = bool(job.setup) and ending.exit_code == SETUP_FAILED_EXIT \
            and _failed_setup(files.get("setup.json"))
        if job.junit_path and not setup_failed and not junit_error:
            if job.pytest_junit:  # asked of pytest, in our own folder
                junit = files.get("junit.xml")
                if junit is None:
                    junit_error = f"no JUnit file at {job.junit_path} in the container"
            else:
                path = job.junit_path
                if not path.startswith(("/", "C:", "c:")):
                    path = f"{started.image.workdir.rstrip('/')}/{path}"
                try:
                    junit = self.file(cid, path, MAX_RESULT_FILE)
                    if junit is None:
                        junit_error = f"no JUnit file at {path} in the container"
                except CellError as exc:
                    junit_error = exc.message
        return Execution(
            exit_code=ending.exit_code, timed_out=ending.timed_out,
            oom_killed=bool(state.get("OOMKilled")),
            # when the tests began (the container itself may have started earlier)
            started_at=tests_started or str(state.get("StartedAt", "")),
            finished_at=str(state.get("FinishedAt", "")),
            run_s=ending.run_s, junit=junit, junit_error=junit_error,
            setup_failed=setup_failed, interpreter=interpreter, packages=packages,
            install=install, warnings=files.get(WARNINGS_FILE))


def _failed_setup(raw: bytes | None) -> bool:
    """setup.json exists only when the setup command failed (see bootstrap.py)."""
    try:
        return raw is not None and int(json.loads(raw).get("exit_code", 0)) != 0
    except (ValueError, TypeError, AttributeError):
        return False
