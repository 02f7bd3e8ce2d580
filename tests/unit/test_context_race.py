"""A project folder that changes while tagmatrix snapshots it (a concurrent writer): no
link is followed out of the project whatever is swapped and when, and a path that is
no longer what the listing saw fails the build with one clear line.

The writer acts at exact moments of the snapshot through its hooks (after a folder is
listed; after the listing, before the first copy): no sleeps, no timing luck."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.engine import walk
from orchestrator.engine.context import ContextSnapshot, Hooks
from orchestrator.errors import BuildFailed
from orchestrator.jobs import ContextRules

HOST_SECRET = b"host secret: never in a build"


def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A project with d/config.txt, and a host folder holding a file of the same name."""
    root = tmp_path / "project"
    (root / "d").mkdir(parents=True)
    (root / "d" / "config.txt").write_text("project config\n")
    (root / "app.py").write_text("print('hi')\n")
    host = tmp_path / "host"
    host.mkdir()
    (host / "config.txt").write_bytes(HOST_SECRET)
    return root, host


def take(root: Path, hooks: Hooks) -> ContextSnapshot:
    return ContextSnapshot(root, ContextRules(), hooks=hooks)


def content(found: ContextSnapshot) -> bytes:
    try:
        return found.stream().read()
    finally:
        found.close()


def once(action: Callable[[], None], when: str = "") -> Callable[[str], None]:
    """A ``listed`` hook that acts after folder ``when`` is listed."""
    def hook(folder: str) -> None:
        if folder == when:
            action()
    return hook


def swap_for_link(root: Path, host: Path, *, keep: bool) -> Callable[[], None]:
    def swap() -> None:
        if keep:
            (root / "d").rename(root / "d.old")
        else:
            shutil.rmtree(root / "d")
        (root / "d").symlink_to(host, target_is_directory=True)
    return swap


def test_a_folder_swapped_for_a_link_before_it_is_listed_fails_the_build(
        tmp_path: Path) -> None:
    root, host = setup(tmp_path)
    with pytest.raises(BuildFailed) as caught:
        take(root, Hooks(listed=once(swap_for_link(root, host, keep=False))))
    assert str(caught.value).startswith("the project changed while tagmatrix read it: d ")


@pytest.mark.parametrize("keep", [True, False], ids=["moved aside", "removed"])
def test_a_folder_swapped_for_a_link_before_the_copy_fails_the_build(
        tmp_path: Path, keep: bool) -> None:
    root, host = setup(tmp_path)
    with pytest.raises(BuildFailed, match="changed while tagmatrix read it: d "):
        take(root, Hooks(copying=swap_for_link(root, host, keep=keep)))


DEPTH = 1100  # deeper than Python's recursion limit


@pytest.fixture
def deep_tree(tmp_path: Path) -> Iterator[Path]:
    """A project holding l/l/.../l/leaf.txt, DEPTH folders deep; removed afterwards
    without recursion (pytest's own clean-up, shutil.rmtree, would overflow)."""
    root, _ = setup(tmp_path)
    chain = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for _ in range(DEPTH):
            os.mkdir("l", dir_fd=chain[-1])
            chain.append(os.open("l", os.O_RDONLY | os.O_DIRECTORY, dir_fd=chain[-1]))
        leaf = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=chain[-1])
        os.write(leaf, b"leaf\n")
        os.close(leaf)
        yield root
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink("leaf.txt", dir_fd=chain[-1])
        while len(chain) > 1:
            os.close(chain.pop())
            os.rmdir("l", dir_fd=chain[-1])
        os.close(chain.pop())


def test_a_deep_tree_is_walked_with_few_descriptors(
        deep_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "OPEN_FOLDERS", 1)  # every folder opened from the nearest
    body = content(take(deep_tree, Hooks()))      # open ancestor, one level at a time
    assert b"leaf\n" in body
    assert HOST_SECRET not in body


def test_a_folder_replaced_by_another_folder_fails_the_build(tmp_path: Path) -> None:
    root, _ = setup(tmp_path)
    other = tmp_path / "other"
    (other / "config.txt").parent.mkdir()
    (other / "config.txt").write_text("project config\n")

    def replace() -> None:
        (root / "d").rename(tmp_path / "gone")
        other.rename(root / "d")
    with pytest.raises(BuildFailed, match="changed while tagmatrix read it: d "):
        take(root, Hooks(copying=replace))


@pytest.mark.parametrize("change", ["replaced", "truncated", "grown", "fifo", "link"])
def test_a_file_that_changed_between_listing_and_copy_fails_the_build(
        tmp_path: Path, change: str) -> None:
    root, host = setup(tmp_path)
    path = root / "d" / "config.txt"

    def act() -> None:
        if change == "replaced":  # a new file (another inode: the old one is kept)
            path.rename(tmp_path / "old-config.txt")
            path.write_text("PROJECT CONFIG\n")
        elif change in ("truncated", "grown"):
            path.write_text("" if change == "truncated" else "project config, longer\n")
        elif change == "fifo":
            path.unlink()
            os.mkfifo(path)  # an open for reading would block without O_NONBLOCK
        else:
            path.unlink()
            path.symlink_to(host / "config.txt")
    with pytest.raises(BuildFailed) as caught:
        take(root, Hooks(copying=act))
    message = str(caught.value)
    assert message.startswith("the project changed while tagmatrix read it: d/config.txt")
    assert "\n" not in message


def test_a_file_that_vanishes_during_the_listing_is_simply_not_in_it(
        tmp_path: Path) -> None:
    root, _ = setup(tmp_path)
    (root / "d" / "editor.swp").write_text("x")

    def vanish(folder: str) -> None:
        if folder == "":  # d is listed next: its file is gone before then
            (root / "d" / "editor.swp").unlink()
    found = take(root, Hooks(listed=vanish))
    try:
        assert "d/editor.swp" not in set(found.members())
        assert "d/config.txt" in set(found.members())
    finally:
        found.close()
