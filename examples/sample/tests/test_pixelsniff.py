import sys
import warnings

import pixelsniff
import pytest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16


@pytest.mark.parametrize(("data", "expected"), [(PNG, "png"), (GIF, "gif"),
                                                (b"\xff\xd8\xff\xe0", "jpeg"),
                                                (b"plain text", None)])
def test_kind(data, expected):
    assert pixelsniff.kind(data) == expected


def test_legacy_kind_agrees():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # imghdr warns on 3.11-3.12
        assert pixelsniff.legacy_kind(PNG) == pixelsniff.kind(PNG)


@pytest.mark.skipif(sys.platform != "win32", reason="Windows-only path handling")
def test_windows_paths():
    assert pixelsniff.kind(b"BM") == "bmp"
