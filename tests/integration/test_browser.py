"""index.html in a real browser: headless Chromium renders it and we look at the pixels."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.reportio import write_reports
from tests.fixtures import history_run, sample_run

pytestmark = pytest.mark.browser

# Background colours of the grid's status classes (orchestrator/reports/html.py).
PASSED = (0xDA, 0xFB, 0xE1)
FAILED = (0xFF, 0xEB, 0xE9)
ERROR = (0xFB, 0xEF, 0xFF)
TIMEOUT = (0xFF, 0xF8, 0xC5)


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1280, 1600)) -> Image.Image:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("Debian's chromium is not installed (make lab installs it)", pytrace=False)
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={out.parent / 'chromium-profile'}",
         "--hide-scrollbars", f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    return Image.open(out).convert("RGB")


def colours(image: Image.Image) -> dict[tuple[int, ...], int]:
    found = image.getcolors(maxcolors=image.width * image.height) or []
    return {tuple(colour): n for n, colour in found if isinstance(colour, tuple)}


def count(image: Image.Image, colour: tuple[int, int, int]) -> int:
    return colours(image).get(colour, 0)


def test_index_html_renders_the_coloured_grid(tmp_path: Path) -> None:
    write_reports(sample_run(), tmp_path / "reports", step_summary=False)
    image = screenshot(tmp_path / "reports" / "index.html", tmp_path / "shot.png")
    assert image.size == (1280, 1600)
    # CSS applied: each status colour covers at least a grid cell's worth of pixels
    # (a cell is about 140 x 40 px; the fixture has 1 passed, 2 failed, 1 error, 1 timeout)
    for colour in (PASSED, FAILED, ERROR, TIMEOUT):
        assert count(image, colour) > 3000, colour
    # and the page is not mostly empty: rendered text is dark pixels
    dark = sum(n for colour, n in colours(image).items() if sum(colour) < 200)
    assert dark > 5000


def test_unstyled_page_would_fail_the_check(tmp_path: Path) -> None:
    # The same check on the page without its stylesheet finds no status colours:
    # the screenshot test can fail.
    write_reports(sample_run(), tmp_path / "reports", step_summary=False)
    page = tmp_path / "reports" / "index.html"
    text = page.read_text()
    page.write_text(text[:text.index("<style>")] + text[text.index("</style>") + 8:])
    image = screenshot(page, tmp_path / "shot.png")
    assert count(image, PASSED) == 0


# Colours of the history's sections (orchestrator/reports/nightly_html.py).
STRIP_PASSED = (0x2D, 0xA4, 0x4E)
STRIP_FAILED = (0xCF, 0x22, 0x2E)
BAR = (0x09, 0x69, 0xDA)
NEW_WARNING = (0xFF, 0xF1, 0xC2)


def bar_widths(image: Image.Image) -> list[int]:
    """The slowdown table's ratio bars, top to bottom: each row's width in pixels."""
    pixels = image.load()
    assert pixels is not None
    rows: list[int] = []
    previous = False
    for y in range(image.height):
        width = sum(1 for x in range(image.width) if pixels[x, y] == BAR)
        if width and not previous:
            rows.append(width)
        previous = bool(width)
    return rows


def test_the_history_sections_render_and_the_slowdowns_sort(tmp_path: Path) -> None:
    write_reports(history_run(), tmp_path / "reports", step_summary=False)
    page = tmp_path / "reports" / "index.html"
    image = screenshot(page, tmp_path / "shot.png", size=(1280, 3200))
    # the strips: 6 cells x 8 runs of 14 x 14 px squares, most of them passed or failed
    assert count(image, STRIP_PASSED) > 6 * 3 * 150
    assert count(image, STRIP_FAILED) > 6 * 3 * 150
    assert count(image, NEW_WARNING) > 2000  # the ledger's new warning is highlighted
    # sorted by ratio (the default): 6.0, 4.0, 3.0, 2.5 -> bars that shrink down the table
    widths = bar_widths(image)
    assert len(widths) == 4, widths
    assert widths == sorted(widths, reverse=True)
    assert widths[0] > widths[-1] * 2
    # the same page sorted by test name (a, b, c, d: 2.5, 6.0, 4.0, 3.0): another order
    text = page.read_text()
    by_test = text.replace('id="slow-ratio" checked', 'id="slow-ratio"').replace(
        'id="slow-test"', 'id="slow-test" checked')
    assert by_test != text
    other = tmp_path / "by-test.html"
    other.write_text(by_test)
    resorted = bar_widths(screenshot(other, tmp_path / "shot2.png", size=(1280, 3200)))
    assert resorted == [widths[3], widths[0], widths[1], widths[2]]
