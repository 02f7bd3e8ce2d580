from __future__ import annotations

import sys

import pytest

from ..config import Settings, load

needs_tomllib = pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")


@needs_tomllib
def test_load() -> None:
    text = '[tool.shortlib]\nname = "demo"\nworkers = 4\ntags = ["a", "b"]\n'
    assert load(text) == Settings(name="demo", workers=4, tags=("a", "b"))


@needs_tomllib
def test_defaults() -> None:
    assert load('[tool.shortlib]\nname = "x"\n').workers == 2


@needs_tomllib
@pytest.mark.parametrize(("text", "error"), [
    ("[tool.other]\n", KeyError), ('[tool.shortlib]\nname = "x"\nworkers = 0\n', ValueError),
])
def test_invalid(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        load(text)
