"""Commit and branch from .git without running git on it, against hostile checkouts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.history.git import GitInfo, read_git, valid_ref

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def _git_dir(root: Path, head: str) -> Path:
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head, encoding="ascii")
    return git


def test_a_real_repository_agrees_with_git(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "release/2.x")
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    sub = tmp_path / "examples" / "sample"
    sub.mkdir(parents=True)
    assert read_git(sub) == GitInfo(commit=git("rev-parse", "HEAD"), branch="release/2.x")
    git("pack-refs", "--all")  # the branch now lives in packed-refs only
    assert not (tmp_path / ".git" / "refs" / "heads" / "release" / "2.x").exists()
    assert read_git(tmp_path) == GitInfo(commit=git("rev-parse", "HEAD"), branch="release/2.x")
    git("checkout", "-q", "--detach")
    assert read_git(tmp_path) == GitInfo(commit=git("rev-parse", "HEAD"), branch=None)
    worktree = tmp_path.parent / f"{tmp_path.name}-wt"
    git("worktree", "add", "-q", "-b", "topic", str(worktree))
    assert read_git(worktree) == GitInfo(commit=git("rev-parse", "HEAD"), branch="topic")


def test_loose_and_packed_refs(tmp_path: Path) -> None:
    git = _git_dir(tmp_path, "ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{OTHER} refs/heads/main\n"
                                     f"^{SHA}\n", encoding="ascii")
    assert read_git(tmp_path) == GitInfo(commit=OTHER, branch="main")
    (git / "refs" / "heads" / "main").write_text(SHA + "\n", encoding="ascii")
    assert read_git(tmp_path) == GitInfo(commit=SHA, branch="main")


def test_a_branch_without_commits_has_no_commit(tmp_path: Path) -> None:
    _git_dir(tmp_path, "ref: refs/heads/main\n")
    assert read_git(tmp_path) == GitInfo(commit=None, branch="main")


def test_no_git_at_all(tmp_path: Path) -> None:
    # tmp_path's parents have no .git on the machines this runs on; say so if they do.
    if any((p / ".git").exists() for p in tmp_path.parents):
        pytest.skip(f"a parent of {tmp_path} is a git checkout")
    assert read_git(tmp_path) == GitInfo()


def test_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main").write_text(SHA, encoding="ascii")
    (outside / "HEAD").write_text("ref: refs/heads/main\n", encoding="ascii")
    checkout = tmp_path / "checkout"
    git = _git_dir(checkout, "ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").symlink_to(outside / "main")
    assert read_git(checkout) == GitInfo(commit=None, branch="main")
    (git / "HEAD").unlink()
    (git / "HEAD").symlink_to(outside / "HEAD")
    assert read_git(checkout) == GitInfo()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").symlink_to(outside)
    assert read_git(linked) == GitInfo()
    heads = tmp_path / "heads"
    git = _git_dir(heads, "ref: refs/heads/main\n")
    (git / "refs" / "heads").rmdir()
    (git / "refs" / "heads").symlink_to(outside)  # a link in the middle of the path
    assert read_git(heads) == GitInfo(commit=None, branch="main")


def test_hostile_ref_names_are_not_paths(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SHA, encoding="ascii")
    checkout = tmp_path / "checkout"
    _git_dir(checkout, "ref: refs/heads/../../../secret\n")
    assert read_git(checkout) == GitInfo()
    for bad in ("refs/heads/../x", "refs/heads/a b", "refs/heads/x.lock", "heads/main",
                "refs/heads/.hidden", "refs/heads/a//b", "refs/heads/a\x00b", "refs/heads/"):
        assert not valid_ref(bad), bad
    assert valid_ref("refs/heads/release/2.x")


def test_a_fifo_or_a_huge_head_does_not_hang_or_load(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    git = _git_dir(fifo, "")
    (git / "HEAD").unlink()
    os.mkfifo(git / "HEAD")  # opening it for reading would block without O_NONBLOCK
    assert read_git(fifo) == GitInfo()
    huge = tmp_path / "huge"
    git = _git_dir(huge, "ref: refs/heads/main\n" + " " * 100_000)
    assert read_git(huge) == GitInfo()


def test_a_worktree_pointer_with_an_absolute_commondir_is_refused(tmp_path: Path) -> None:
    common = tmp_path / "common"
    (common / "refs" / "heads").mkdir(parents=True)
    (common / "refs" / "heads" / "main").write_text(SHA, encoding="ascii")
    linked = tmp_path / "linked-gitdir"
    linked.mkdir()
    (linked / "HEAD").write_text("ref: refs/heads/main\n", encoding="ascii")
    (linked / "commondir").write_text(str(common), encoding="ascii")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {linked}\n", encoding="ascii")
    assert read_git(checkout) == GitInfo()
    (linked / "commondir").write_text("../common\n", encoding="ascii")
    assert read_git(checkout) == GitInfo(commit=SHA, branch="main")
