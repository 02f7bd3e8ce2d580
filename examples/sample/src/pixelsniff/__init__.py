"""pixelsniff: tell an image's format from its first bytes.

A deliberately realistic compatibility bug for the tagmatrix demo:
``legacy_kind`` uses the standard library's ``imghdr``, which Python 3.13
removed (PEP 594). Its tests pass on 3.10-3.12 and fail on 3.13; the
signature table in ``kind`` works everywhere.
"""

from __future__ import annotations

SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
}


def kind(data: bytes) -> str | None:
    """The image format of ``data``, or None."""
    for magic, name in SIGNATURES.items():
        if data.startswith(magic):
            return name
    return None


def legacy_kind(data: bytes) -> str | None:
    """The same through ``imghdr`` (removed in Python 3.13)."""
    import imghdr

    return imghdr.what(None, h=data)
