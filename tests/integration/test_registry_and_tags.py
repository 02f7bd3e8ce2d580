"""The registry client and `tagmatrix tags --refresh` against the real lab registry."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import docker
import pytest

from orchestrator.engine.registry import Registry
from orchestrator.errors import RegistryError
from tests.integration.conftest import REGISTRY, lab_matrix, make_project, tagmatrix

pytestmark = pytest.mark.docker


def test_tags_and_digest_from_the_lab_registry(lab_minors: list[str]) -> None:
    registry = Registry(REGISTRY)
    tags = registry.tags("library/python")
    assert f"{lab_minors[0]}-slim" in tags
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/library/python/manifests/{lab_minors[0]}-slim", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local lab
        expected = response.headers["Docker-Content-Digest"]
    assert registry.digest("library/python", f"{lab_minors[0]}-slim") == expected
    assert registry.digest("library/python", "0.0-no-such-tag") is None


def test_registry_errors_are_explained() -> None:
    with pytest.raises(RegistryError, match="no such repository"):
        Registry(REGISTRY).tags("nobody/nothing")
    with pytest.raises(RegistryError, match="cannot reach the registry") as info:
        Registry("127.0.0.1:1").tags("library/python")
    assert info.value.exit_code == 3


def test_refresh_plans_against_what_the_registry_serves(
        tmp_path: Path, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    path = make_project(tmp_path, lab_matrix([lab_minors[0]], extra="""
        allow_failure: []
    """), {"test_ok.py": "def test_ok():\n    pass\n"})
    refreshed = tagmatrix("tags", "--refresh", "-f", str(path))
    assert refreshed.code == 0, refreshed.err
    assert f"{REGISTRY}/library/python" in refreshed.out
    listing = [line.split() for line in refreshed.out.splitlines()]
    assert [lab_minors[0], "slim", "slim-bookworm"] in listing
    # 3.14 exists upstream but not in the lab: now a config error that names the source
    bad = path.with_name("bad.yaml")
    bad.write_text(lab_matrix(["3.14"]))
    planned = tagmatrix("plan", "-f", str(bad))
    assert planned.code == 2
    assert f"not in the catalogue ({REGISTRY}/library/python, refreshed" in planned.err
    # alpine is a valid variant, but the lab has none: skipped with the reason
    alpine = path.with_name("alpine.yaml")
    alpine.write_text(lab_matrix([lab_minors[0]]).replace("[slim]", "[slim, alpine]"))
    planned = tagmatrix("plan", "-f", str(alpine), "--json")
    assert planned.code == 0, planned.err
    assert f'"reason": "python:{lab_minors[0]}-alpine is not published' in planned.out
    # back to the built-in catalogue: 3.14 is planned again
    assert tagmatrix("tags", "--builtin", "-f", str(path)).code == 0
    assert tagmatrix("plan", "-f", str(bad)).code == 0
