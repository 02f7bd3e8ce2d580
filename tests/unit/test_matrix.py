"""Expansion semantics: GitHub Actions' documented examples, reproduced exactly."""

from __future__ import annotations

import pytest

from orchestrator.matrix import (
    Cell,
    ExpansionError,
    IncludeEntry,
    MatrixSpec,
    Overrides,
    Selector,
    combinations,
    expand,
)


def spec(axes: dict[str, list[str]], *, exclude: list[dict[str, str]] | None = None,
         include: list[dict[str, str]] | None = None) -> MatrixSpec:
    return MatrixSpec(
        axes=tuple((k, tuple(v)) for k, v in axes.items()),
        exclude=tuple(tuple(e.items()) for e in exclude or []),
        include=tuple(IncludeEntry(values=tuple(e.items()), index=i)
                      for i, e in enumerate(include or [])),
    )


def values(s: MatrixSpec) -> list[dict[str, str]]:
    return [c.values for c in combinations(s)]


def test_github_order_first_variable_outermost() -> None:
    # docs: "version: [10, 12, 14], os: [ubuntu-latest, windows-latest]" -> this order
    got = values(spec({"version": ["10", "12", "14"], "os": ["ubuntu-latest", "windows-latest"]}))
    assert got == [
        {"version": "10", "os": "ubuntu-latest"}, {"version": "10", "os": "windows-latest"},
        {"version": "12", "os": "ubuntu-latest"}, {"version": "12", "os": "windows-latest"},
        {"version": "14", "os": "ubuntu-latest"}, {"version": "14", "os": "windows-latest"},
    ]


def test_github_include_example_fruit_animal() -> None:
    # docs: "Expanding or adding matrix configurations" (the fruit/animal example)
    got = values(spec(
        {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
        include=[{"color": "green"}, {"color": "pink", "animal": "cat"},
                 {"fruit": "apple", "shape": "circle"}, {"fruit": "banana"},
                 {"fruit": "banana", "animal": "cat"}]))
    assert got == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_github_expanding_configurations_example() -> None:
    # docs: "Example: Expanding configurations" - npm 6 only on windows x node 16
    got = values(spec({"os": ["windows-latest", "ubuntu-latest"], "node": ["14", "16"]},
                      include=[{"os": "windows-latest", "node": "16", "npm": "6"}]))
    assert len(got) == 4
    assert [c for c in got if "npm" in c] == [{"os": "windows-latest", "node": "16", "npm": "6"}]


def test_github_adding_configurations_only_include() -> None:
    # docs: "Example: Adding configurations" - a matrix of only include entries
    got = values(spec({}, include=[{"site": "production", "datacenter": "site-a"},
                                   {"site": "staging", "datacenter": "site-b"}]))
    assert got == [{"site": "production", "datacenter": "site-a"},
                   {"site": "staging", "datacenter": "site-b"}]


def test_github_excluding_example() -> None:
    # docs: "Excluding matrix configurations": 12 combinations - 1 - 2 = 9 jobs
    got = values(spec(
        {"os": ["macos-latest", "windows-latest"], "version": ["12", "14", "16"],
         "environment": ["staging", "production"]},
        exclude=[{"os": "macos-latest", "version": "12", "environment": "production"},
                 {"os": "windows-latest", "version": "16"}]))
    assert len(got) == 9
    assert {"os": "macos-latest", "version": "12", "environment": "production"} not in got
    assert not [c for c in got if c["os"] == "windows-latest" and c["version"] == "16"]


def test_include_matches_only_product_cells_not_excluded_ones() -> None:
    got = values(spec({"python": ["3.12", "3.13"]}, exclude=[{"python": "3.13"}],
                      include=[{"python": "3.13", "extra": "x"}]))
    assert got == [{"python": "3.12"}, {"python": "3.13", "extra": "x"}]


def test_include_that_adds_nothing_is_an_error() -> None:
    with pytest.raises(ExpansionError, match="adds nothing") as info:
        combinations(spec({"python": ["3.12"]}, include=[{"python": "3.12"}]))
    assert info.value.index == 0


def test_include_with_only_overrides_is_not_nothing() -> None:
    s = MatrixSpec(axes=(("python", ("3.12", "3.13")),), include=(
        IncludeEntry(values=(("python", "3.13"),), overrides=Overrides(timeout=5.0)),))
    cells = expand(s)
    assert [c.overrides.timeout for c in cells] == [None, 5.0]


def test_cell_ids_tag_then_user_axes() -> None:
    cells = expand(spec({"python": ["3.12"], "variant": ["slim", ""], "deps": ["min", "latest"]}))
    assert [c.id for c in cells] == ["3.12-slim-min", "3.12-slim-latest", "3.12-min",
                                     "3.12-latest"]


def test_ids_are_stable_when_other_values_change() -> None:
    before = {c.id: c for c in expand(spec({"python": ["3.12", "3.13"], "variant": ["slim"]}))}
    after = {c.id: c for c in expand(spec({"python": ["3.11", "3.12", "3.13"],
                                          "variant": ["slim"]}))}
    for cell_id, cell in before.items():
        assert after[cell_id] == cell


def test_new_include_cell_without_python_is_an_error() -> None:
    # variant is an original axis and alpine matches no cell: a new cell, without python
    with pytest.raises(ExpansionError, match="no 'python'"):
        expand(spec({"python": ["3.12"], "variant": ["slim"]}, include=[{"variant": "alpine"}]))
    # a key that is not an axis is added to every cell instead
    cells = expand(spec({"python": ["3.12"]}, include=[{"variant": "alpine"}]))
    assert [c.values() for c in cells] == [{"python": "3.12", "variant": "alpine"}]


def test_new_include_cells_named_like_product_cells_or_by_their_extras() -> None:
    cells = expand(spec({"python": ["3.12"], "variant": ["slim"]}, include=[
        {"python": "3.14", "variant": "slim", "experimental": "yes"},
        {"python": "3.14", "variant": "slim", "experimental": "no"}]))
    assert [c.id for c in cells] == ["3.12-slim", "3.14-slim", "3.14-slim-no"]
    assert [c.origin for c in cells] == ["product", "include", "include"]


def test_selector_key_globs_and_id_globs() -> None:
    cell = Cell(id="3.15-rc-slim-min", python="3.15-rc", variant="slim", axes=(("deps", "min"),))
    assert Selector.parse("python=3.15-rc").matches(cell)
    assert Selector.parse("python=3.1*,variant=slim").matches(cell)
    assert not Selector.parse("python=3.15-rc,deps=latest").matches(cell)
    assert Selector.parse("3.15-rc-*").matches(cell)
    assert not Selector.parse("3.14-*").matches(cell)
    assert Selector.from_mapping({"deps": "min"}).matches(cell)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        Selector.parse("python=3.12,oops")
