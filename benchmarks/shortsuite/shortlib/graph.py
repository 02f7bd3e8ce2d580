"""Weighted directed graphs: shortest paths and topological order."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Hashable, Iterable

Edge = tuple[Hashable, Hashable, float]


class CycleError(ValueError):
    """A topological order was asked of a graph with a cycle."""


class Graph:
    def __init__(self, edges: Iterable[Edge] = ()) -> None:
        self.adjacent: dict[Hashable, list[tuple[Hashable, float]]] = defaultdict(list)
        self.nodes: set[Hashable] = set()
        for source, target, weight in edges:
            self.add(source, target, weight)

    def add(self, source: Hashable, target: Hashable, weight: float = 1.0) -> None:
        if weight < 0:
            raise ValueError("negative weights are not supported")
        self.adjacent[source].append((target, weight))
        self.nodes.update((source, target))

    def shortest(self, start: Hashable) -> dict[Hashable, float]:
        """Dijkstra: distance from start to every reachable node."""
        distance = {start: 0.0}
        queue: list[tuple[float, int, Hashable]] = [(0.0, 0, start)]
        counter = 1  # ties broken by insertion order: nodes need not be comparable
        while queue:
            dist, _, node = heapq.heappop(queue)
            if dist > distance[node]:
                continue
            for target, weight in self.adjacent.get(node, ()):
                candidate = dist + weight
                if candidate < distance.get(target, float("inf")):
                    distance[target] = candidate
                    heapq.heappush(queue, (candidate, counter, target))
                    counter += 1
        return distance

    def bellman_ford(self, start: Hashable) -> dict[Hashable, float]:
        """The slow reference the tests compare Dijkstra with."""
        distance = {node: float("inf") for node in self.nodes}
        distance[start] = 0.0
        edges = [(s, t, w) for s, out in self.adjacent.items() for t, w in out]
        for _ in range(len(self.nodes) - 1):
            changed = False
            for source, target, weight in edges:
                if distance[source] + weight < distance[target]:
                    distance[target] = distance[source] + weight
                    changed = True
            if not changed:
                break
        return {n: d for n, d in distance.items() if d != float("inf")}

    def topological(self) -> list[Hashable]:
        """Kahn's algorithm, stable for insertion order."""
        indegree = dict.fromkeys(self.nodes, 0)
        for out in self.adjacent.values():
            for target, _ in out:
                indegree[target] += 1
        ready = deque(sorted((n for n, d in indegree.items() if d == 0), key=repr))
        order = []
        while ready:
            node = ready.popleft()
            order.append(node)
            for target, _ in self.adjacent.get(node, ()):
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
        if len(order) != len(self.nodes):
            raise CycleError(f"cycle among {len(self.nodes) - len(order)} nodes")
        return order
