from __future__ import annotations

import random

import pytest

from ..graph import CycleError, Graph


def test_small() -> None:
    graph = Graph([("a", "b", 1), ("b", "c", 2), ("a", "c", 5), ("c", "d", 1)])
    assert graph.shortest("a") == {"a": 0, "b": 1, "c": 3, "d": 4}
    assert graph.topological() == ["a", "b", "c", "d"]


def test_cycle() -> None:
    with pytest.raises(CycleError):
        Graph([(1, 2, 1), (2, 3, 1), (3, 1, 1)]).topological()


def test_negative_weight() -> None:
    with pytest.raises(ValueError, match="negative"):
        Graph([(1, 2, -1)])


@pytest.mark.parametrize("seed", range(6))
def test_dijkstra_agrees_with_bellman_ford(seed: int) -> None:
    rng = random.Random(seed)
    nodes = 120
    graph = Graph((rng.randrange(nodes), rng.randrange(nodes), rng.randint(1, 20))
                  for _ in range(nodes * 4))
    assert graph.shortest(0) == graph.bellman_ford(0)


def test_topological_respects_every_edge() -> None:
    rng = random.Random(3)
    edges = [(a, b, 1.0) for a in range(300)
             for b in rng.sample(range(a + 1, 301), min(3, 300 - a))]
    order = Graph(edges).topological()
    position = {node: i for i, node in enumerate(order)}
    assert all(position[a] < position[b] for a, b, _ in edges)
