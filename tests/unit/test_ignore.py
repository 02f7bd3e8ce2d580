""".dockerignore matching: the same paths as docker-py's matcher (property tests against
it), in time linear in the path whatever the patterns, and the caps on the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from docker.utils.build import PatternMatcher, exclude_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.engine.context import ContextSnapshot
from orchestrator.engine.ignore import Matcher, PatternError
from orchestrator.ignorefile import MAX_PATTERN_BYTES, MAX_PATTERN_LENGTH, read_patterns
from orchestrator.jobs import ContextRules
from orchestrator.project import ProjectError

ATOMS = ["a", "b", "B", "*", "**", "***", "?", "[ab]", "[!a]", "[a-c]", "[*]", "[", "]",
         ".", "..", "x.py", "**/", "***/", "/", "é"]
NAMES = ["a", "b", "B", "ab", "x.py", "ba", ".d", "é", "É", ".dockerignore", "c"]

patterns = st.lists(st.builds(lambda bang, atoms: ("!" if bang else "") + "".join(atoms),
                              st.booleans(), st.lists(st.sampled_from(ATOMS), min_size=1,
                                                      max_size=6)),
                    min_size=1, max_size=6)
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map("/".join)


# docker-py's Python re warns of "[[" ("possible nested set"): the same pattern to it
DOCKER_PY_WARNS = pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")


def docker_py(matcher: PatternMatcher, path: str) -> bool:
    # types-docker says PathLike; docker-py lower()s the path: it takes a str
    return bool(matcher.matches(path))  # type: ignore[arg-type]


@DOCKER_PY_WARNS
@settings(max_examples=500, deadline=None)
@given(patterns, st.lists(paths, min_size=1, max_size=10))
def test_a_path_is_excluded_exactly_when_docker_py_excludes_it(
        listed: list[str], candidates: list[str]) -> None:
    theirs = PatternMatcher(list(listed))
    ours = Matcher(listed)
    for path in candidates:
        assert ours.excluded(path) == docker_py(theirs, path), (listed, path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for path in ("a/b/x.py", "a/B/c", "a/.d/x.py", "b/a/ab", "ba/x.py", "x.py", "é/c",
                 ".dockerignore", "Dockerfile", "c/a/b/ab"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    (root / "b" / "link").symlink_to("../a")
    return root


@DOCKER_PY_WARNS
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns)
def test_a_context_holds_exactly_what_docker_py_would_send(
        tree: Path, listed: list[str]) -> None:
    expected = exclude_paths(str(tree), list(listed))  # appends "!Dockerfile", as we do
    with ContextSnapshot(tree, ContextRules(excludes=tuple(listed)), content=False) as found:
        assert set(found.members()) == expected, listed


def test_a_backtracking_pattern_costs_microseconds_not_hours() -> None:
    # Python's re (docker-py) needs ~0.3 s for two such patterns on a 40-character
    # name, and grows exponentially with the name
    matcher = Matcher([f"*a*a*a*a*a*a*a*a*a*b{i}" for i in range(100)])
    started = time.perf_counter()
    assert not matcher.excluded("a" * 250)
    assert time.perf_counter() - started < 1.0


def test_a_thousand_patterns_over_thousands_of_files_take_seconds_not_minutes(
        tmp_path: Path) -> None:
    # docker-py: 29 s for 1,000 such patterns over 200 files; 2,000 files here
    for i in range(2000):
        (tmp_path / f"d{i % 20}" / f"e{i % 7}").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"d{i % 20}" / f"e{i % 7}" / f"f{i}.py").write_text("x")
    (tmp_path / ".dockerignore").write_text("\n".join(f"**/nomatch{i}/**"
                                                      for i in range(1000)))
    started = time.perf_counter()
    with ContextSnapshot(tmp_path, ContextRules(), content=False) as found:
        assert sum(1 for _ in found.members()) > 2000
    assert time.perf_counter() - started < 10.0


def test_runs_of_wildcards_are_collapsed_without_changing_what_matches() -> None:
    for listed, path, excluded in ((["a/" + "*" * 60 + "x"], "a/b/c/x", True),
                                   (["a/" + "*" * 61 + "x"], "a/b/c/dx", True),
                                   (["***/**"], "ba", False),
                                   (["**/" * 30 + "x"], "a/b/x", True),
                                   (["[*]" + "*" * 9], "*ab", True)):
        assert Matcher(listed).excluded(path) is excluded
        assert docker_py(PatternMatcher(list(listed)), path) is excluded


def test_a_set_too_large_for_the_memory_budget_is_an_error_not_a_silent_miss() -> None:
    with pytest.raises(PatternError, match="too complex to match within"):
        Matcher([f"**/x{i}*y/**" for i in range(50)], max_mem=64 * 1024)


def test_the_file_is_refused_over_each_cap(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("a" * (MAX_PATTERN_LENGTH + 1) + "\n")
    with pytest.raises(ProjectError, match=f"a pattern of {MAX_PATTERN_LENGTH + 1} char"):
        read_patterns(tmp_path)
    ignore.write_text("\n".join("x" * 1000 for _ in range(MAX_PATTERN_BYTES // 1000 + 1)))
    with pytest.raises(ProjectError, match=f"bytes of patterns, over tagmatrix's cap of "
                                           f"{MAX_PATTERN_BYTES}"):
        read_patterns(tmp_path)
    ignore.write_text("# fine\n\n*.log\n!keep.log\n")
    assert read_patterns(tmp_path) == ["*.log", "!keep.log"]
