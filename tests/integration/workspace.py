"""Where an integration test builds its projects, and how it removes what they left.

tagmatrix names its images after the project folder (``tagmatrix/<folder>:<tag>-<key>``,
``tagmatrix/<folder>-project:<kind>-<key>``) and a Swarm run pushes them to the lab
registry (``127.0.0.1:5000/tagmatrix/<folder>``). Folder names alone are not unique
on a shared engine: pytest's ``tmp_path`` names (``test_out_of_memory_is_an_e0``)
repeat in every session, in every worktree. So every folder and registry repository
a test makes through a :class:`Workspace` carries the workspace's random token, and
teardown removes exactly the image references and registry manifests whose
repository name holds that token: never what another test or person created.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import docker

# what a HEAD on a tag must accept to answer the digest that a DELETE takes
_MANIFESTS = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def repository_of(reference: str) -> str:
    """``127.0.0.1:5000/a/b:tag`` or ``a/b@sha256:...`` -> the repository name."""
    if "@" in reference:
        return reference.split("@", 1)[0]
    head, _, last = reference.rpartition("/")
    name = last.rsplit(":", 1)[0]
    return f"{head}/{name}" if head else name


def remove_images(client: docker.DockerClient, owned: Callable[[str], bool], *,
                  timeout: float = 60) -> list[str]:
    """Removes every local tag and digest reference whose repository is ``owned``
    (never forced: an image another reference or a container still uses stays).
    A reference held by a container that is going away (a Swarm task) is retried
    until ``timeout``; returns the references removed."""
    deadline = time.monotonic() + timeout
    removed: list[str] = []
    while True:
        refused: dict[str, str] = {}
        for image in client.api.images():
            references = [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]
            for reference in references:
                if reference.startswith("<none>") or not owned(repository_of(reference)):
                    continue
                try:
                    client.api.remove_image(reference)
                    removed.append(reference)
                except docker.errors.NotFound:
                    pass  # went with an earlier reference of the same image
                except docker.errors.APIError as exc:
                    refused[reference] = str(exc)
        if not refused:
            return removed
        if time.monotonic() >= deadline:
            raise RuntimeError(f"images left behind: {refused}")
        time.sleep(0.5)


def _request(registry: str, method: str, path: str, *,
             accept: str = "") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{registry}{path}", method=method,
                                     headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the lab
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 404, dict(exc.headers), b""
        raise


def registry_repositories(registry: str) -> list[str]:
    """Every repository the registry lists (deleted manifests leave the name)."""
    found: list[str] = []
    path: str | None = "/v2/_catalog?n=1000"
    while path:
        _, headers, body = _request(registry, "GET", path)
        found += json.loads(body).get("repositories") or []
        link = re.match(r"<([^>]+)>", headers.get("Link", ""))
        path = link[1] if link else None
    return found


def delete_repository(registry: str, repository: str) -> list[str]:
    """Deletes every manifest a tag of ``repository`` points to (the lab registry has
    ``delete: enabled``); returns the digests deleted. Its name stays in the catalogue
    with no tags: only a garbage collection would drop it."""
    status, _, body = _request(registry, "GET", f"/v2/{repository}/tags/list")
    tags = (json.loads(body).get("tags") or []) if status == 200 else []
    deleted: list[str] = []
    for tag in tags:
        status, headers, _ = _request(registry, "HEAD", f"/v2/{repository}/manifests/{tag}",
                                      accept=_MANIFESTS)
        digest = headers.get("Docker-Content-Digest")
        if status == 404 or not digest:
            continue  # went with the manifest of an earlier tag
        status, _, _ = _request(registry, "DELETE", f"/v2/{repository}/manifests/{digest}")
        if status != 404:
            deleted.append(f"{repository}@{digest}")
    return deleted


class Workspace:
    """A test's project folders and registry repositories, named with a random token;
    ``with Workspace(root, client, registry) as ws:`` (or the ``workspace`` fixture)
    removes, at the end, the images and registry manifests that carry the token."""

    def __init__(self, root: Path, client: docker.DockerClient, registry: str) -> None:
        self.root = root
        self.client = client
        self.registry = registry
        self.token = secrets.token_hex(4)
        self._owned = re.compile(rf"(?:^|[/._-]){self.token}(?:$|[/._-])")

    def unique(self, name: str) -> str:
        """``name`` made a valid image-name component (tagmatrix keeps it as it is),
        with the token."""
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "project"
        return f"{base}-{self.token}"

    def folder(self, name: str | None = None) -> Path:
        """A new empty folder ``root/<name>-<token>`` for a project (default name: the
        root's, e.g. the test's tmp_path name, so the images say which test built them)."""
        path = self.root / self.unique(name or self.root.name)
        path.mkdir(parents=True)
        return path

    def adopt(self, folder: Path) -> Path:
        """Renames an existing project folder (an unpacked sdist) to a unique name."""
        return folder.rename(folder.with_name(self.unique(folder.name)))

    def repository(self, name: str) -> str:
        """A registry repository name of this workspace: ``locktest/python`` ->
        ``locktest-<token>/python``."""
        first, _, rest = name.partition("/")
        return f"{self.unique(first)}/{rest}" if rest else self.unique(first)

    def owns(self, repository: str) -> bool:
        return self._owned.search(repository) is not None

    def remove(self) -> tuple[list[str], list[str]]:
        """Deletes this workspace's registry manifests, then its local image references;
        returns both lists."""
        manifests = [digest for repository in registry_repositories(self.registry)
                     if self.owns(repository)
                     for digest in delete_repository(self.registry, repository)]
        return manifests, remove_images(self.client, self.owns)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.remove()
