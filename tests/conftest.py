"""Helpers shared by unit and integration tests."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Jenkins' junit-10.xsd: in ../shared on the project's machines, absent from a bare clone.
XSD = REPO.parent / "shared" / "reference" / "junit-10.xsd"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Disruptive tests (they stop the engine) run after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session", autouse=True)
def _private_tag_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests (and the tagmatrix processes they start) never see the user's tag lists.

    Session-scoped so that it is in place before module-scoped runs start.
    """
    previous = os.environ.get("TAGMATRIX_CACHE_DIR")
    os.environ["TAGMATRIX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("TAGMATRIX_CACHE_DIR", None)
    else:
        os.environ["TAGMATRIX_CACHE_DIR"] = previous


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write("matrix.yaml", text) -> the path, with the text dedented."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def validate_against_xsd(xml: bytes) -> None:
    """Validate against Jenkins' junit-10.xsd; skips only this check when it is absent."""
    if not XSD.is_file():
        pytest.skip(f"XSD check skipped: {XSD} is not on this machine (a bare clone has no "
                    "../shared)")
    import xmlschema

    xmlschema.XMLSchema(str(XSD)).validate(xml.decode("utf-8"))
