"""Mount mode's folder: the run's snapshot of the project, unpacked once per run.

Binding the checkout itself (read-only) still showed the tests what image mode leaves
out: `.git/config` with the CI's credentials (actions/checkout's extraheader), files
`.dockerignore` excludes (`.env`), an earlier run's reports; the tests then ran code
the recorded digest did not describe when the folder changed during the run, and a
socket a host process created in it later was reachable. The containers of a run now
bind a copy of exactly what a build context would hold (the same snapshot, so the
cell's `project_digest` is the code they ran), in a temporary folder removed when the
engine closes.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path

from ..errors import CellError, Stage
from ..jobs import ContextRules
from .dockerimage import ImageStore

log = logging.getLogger(__name__)


def _unpacked(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter (no device files, no setuid bits, nothing outside the
    folder); a link it refuses (one pointing out of the project) is left out, as the
    snapshot keeps links as links and the tests could not follow it anyway."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        log.info("mount copy: leaving out %s: %s", member.name, exc)
        return None


class MountCopies:
    """One unpacked snapshot per project and rules, for the engine's mount cells."""

    def __init__(self, images: ImageStore) -> None:
        self.images = images
        self._copies: dict[tuple[Path, ContextRules], Path] = {}
        self._lock = threading.Lock()

    def get(self, project: Path, rules: ContextRules) -> tuple[Path, str]:
        """The folder to bind, and the digest of what it holds."""
        snapshot = self.images.snapshot(project, rules)
        key = (project, rules)
        with self._lock:
            folder = self._copies.get(key)
            if folder is None:
                folder = Path(tempfile.mkdtemp(prefix="tagmatrix-mount-"))
                try:
                    with tarfile.open(fileobj=snapshot.stream(), mode="r|") as tar:
                        # our own snapshot, through the "data" filter (see _unpacked)
                        tar.extractall(folder, filter=_unpacked)  # noqa: S202
                except (OSError, tarfile.TarError) as exc:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise CellError(f"cannot prepare the project for mount mode: {exc}",
                                    stage=Stage.BUILD) from exc
                folder.chmod(0o755)  # mkdtemp's 0700: the container's user must read it
                self._copies[key] = folder
        return folder, snapshot.fingerprint

    def close(self) -> None:
        with self._lock:
            for folder in self._copies.values():
                shutil.rmtree(folder, ignore_errors=True)
            self._copies.clear()
