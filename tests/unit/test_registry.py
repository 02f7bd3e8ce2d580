"""Pure parts of the registry client."""

from __future__ import annotations

import requests

from orchestrator.engine.registry import Registry, _next_page


def test_api_base_for_docker_hub_loopback_and_others() -> None:
    assert Registry("docker.io").api_base == "https://registry-1.docker.io/v2"
    assert Registry("127.0.0.1:5000").api_base == "http://127.0.0.1:5000/v2"
    assert Registry("localhost:5000").api_base == "http://localhost:5000/v2"
    assert Registry("ghcr.io").api_base == "https://ghcr.io/v2"


def test_pagination_link() -> None:
    response = requests.Response()
    response.headers["Link"] = '</v2/library/python/tags/list?last=3.12&n=1000>; rel="next"'
    assert _next_page(response, "http://h:5000/v2") == \
        "http://h:5000/v2/library/python/tags/list?last=3.12&n=1000"
    assert _next_page(requests.Response(), "http://h/v2") is None
