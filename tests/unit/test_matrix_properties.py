"""Property-based tests of the expansion invariants (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.matrix import IncludeEntry, MatrixSpec, combinations, expand

VALUES = st.sampled_from(["a", "b", "c", "d"])
PYTHONS = st.sampled_from(["3.10", "3.11", "3.12", "3.13", "3.14"])


@st.composite
def specs(draw: st.DrawFn) -> MatrixSpec:
    names = draw(st.lists(st.sampled_from(["k1", "k2", "k3"]), min_size=1, max_size=3,
                          unique=True))
    axes = {"python": draw(st.lists(PYTHONS, min_size=1, max_size=3, unique=True))}
    for name in names:
        axes[name] = draw(st.lists(VALUES, min_size=1, max_size=3, unique=True))
    keys = list(axes)

    def entry(extra_keys: list[str]) -> dict[str, str]:
        chosen = draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True))
        out = {k: draw(PYTHONS if k == "python" else VALUES) for k in chosen}
        out.update({k: draw(VALUES) for k in extra_keys})
        return out

    exclude = [entry([]) for _ in range(draw(st.integers(0, 3)))]
    exclude = [e for e in exclude if e]
    include = []
    for i in range(draw(st.integers(0, 3))):
        values = entry(["x"])  # always adds a key: never an "adds nothing" entry
        values.setdefault("python", draw(PYTHONS))
        include.append(IncludeEntry(values=tuple(values.items()), index=i))
    return MatrixSpec(axes=tuple((k, tuple(v)) for k, v in axes.items()),
                      exclude=tuple(tuple(e.items()) for e in exclude),
                      include=tuple(include))


def _product(spec: MatrixSpec) -> list[dict[str, str]]:
    names = spec.axis_names
    return [dict(zip(names, c, strict=True))
            for c in itertools.product(*(v for _, v in spec.axes))]


def _excluded(values: dict[str, str], spec: MatrixSpec) -> bool:
    return any(all(values.get(k) == v for k, v in e) for e in spec.exclude)


@settings(max_examples=300, deadline=None)
@given(specs())
def test_exclude_never_leaves_a_matching_product_cell(spec: MatrixSpec) -> None:
    for combo in combinations(spec):
        if combo.origin == "product":
            assert not _excluded({k: combo.values[k] for k in spec.axis_names}, spec)


@settings(max_examples=300, deadline=None)
@given(specs())
def test_include_never_overwrites_an_original_value(spec: MatrixSpec) -> None:
    names = spec.axis_names
    product = [c for c in combinations(spec) if c.origin == "product"]
    kept = [p for p in _product(spec) if not _excluded(p, spec)]
    # the product cells are exactly the non-excluded combinations, in order, with
    # their original values intact whatever include added
    assert [{k: c.values[k] for k in names} for c in product] == kept


@settings(max_examples=300, deadline=None)
@given(specs())
def test_new_include_cells_are_their_entries(spec: MatrixSpec) -> None:
    created = [c for c in combinations(spec) if c.origin == "include"]
    by_index = {e.index: dict(e.values) for e in spec.include}
    for combo in created:
        assert combo.include_index is not None
        assert combo.values == by_index[combo.include_index]


@settings(max_examples=300, deadline=None)
@given(specs())
def test_ids_unique_stable_and_order_deterministic(spec: MatrixSpec) -> None:
    try:
        first = expand(spec)
    except ValueError:
        return  # two include entries adding the same cell: refused, by design
    again = expand(spec)
    assert first == again
    ids = [c.id for c in first]
    assert len(set(ids)) == len(ids)
    # stable: ids depend on values, not positions. Reversing each axis's values
    # gives the same cells under the same ids.
    reversed_spec = MatrixSpec(axes=tuple((k, tuple(reversed(v))) for k, v in spec.axes),
                               exclude=spec.exclude, include=spec.include)
    try:
        other = expand(reversed_spec)
    except ValueError:
        return
    assert {c.id: c.values() for c in other} == {c.id: c.values() for c in first}
