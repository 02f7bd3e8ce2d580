from __future__ import annotations

import random

import pytest

from ..lru import LRUCache


def test_eviction_order() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    assert cache.put("c", 3) == "b"
    assert cache.keys() == ["a", "c"]
    assert (cache.hits, cache.misses) == (1, 0)


def test_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LRUCache(0)


def test_get_or_compute_counts() -> None:
    cache: LRUCache[int, int] = LRUCache(8)
    calls: list[int] = []

    def square(key: int) -> int:
        calls.append(key)
        return key * key

    assert [cache.get_or_compute(k, square) for k in [1, 2, 1, 3, 2, 1]] == [1, 4, 1, 9, 4, 1]
    assert calls == [1, 2, 3]
    assert (cache.hits, cache.misses) == (3, 3)


@pytest.mark.parametrize("capacity", [1, 3, 17, 64])
def test_matches_a_reference_model(capacity: int) -> None:
    rng = random.Random(capacity)
    cache: LRUCache[int, int] = LRUCache(capacity)
    model: list[tuple[int, int]] = []  # oldest first
    for step in range(6000):
        key = rng.randrange(capacity * 3)
        if rng.random() < 0.5:
            found = next((v for k, v in model if k == key), None)
            if found is not None:
                model = [(k, v) for k, v in model if k != key] + [(key, found)]
            assert cache.get(key) == found
        else:
            model = [(k, v) for k, v in model if k != key] + [(key, step)]
            model = model[-capacity:]
            cache.put(key, step)
        assert cache.keys() == [k for k, _ in model]
