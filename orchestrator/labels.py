"""Labels on everything tagmatrix creates, so it can find and remove it."""

import hashlib
from pathlib import Path

LABEL_MANAGED = "org.tagmatrix.managed"
LABEL_RUN = "org.tagmatrix.run-id"
LABEL_PID = "org.tagmatrix.pid"
LABEL_HOST = "org.tagmatrix.host"
LABEL_PID_START = "org.tagmatrix.pid-start"  # tells a live owner from a reused PID
LABEL_CELL = "org.tagmatrix.cell"
LABEL_PROJECT_KEY = "org.tagmatrix.project-key"  # a project image: its build key
LABEL_BUILD_KEY = "org.tagmatrix.build-key"  # a cell image: its build key
LABEL_PROJECT = "org.tagmatrix.project"  # images and containers: whose project
# an image built from one of tagmatrix's Dockerfiles: the digest of its inputs
# (engine/reuse.py), so an unchanged image is used again without building
LABEL_INPUTS = "org.tagmatrix.inputs"


def project_id(folder: Path) -> str:
    """A project's label value: a digest of its folder's path (names no user data)."""
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]

