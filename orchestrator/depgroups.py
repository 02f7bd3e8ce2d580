"""PEP 735 dependency groups, resolved on the host once per project, within bounds.

``[dependency-groups]`` comes from a pull request's pyproject.toml. The reference
implementation (dependency-groups) parses each group: names normalised, every item a
PEP 508 requirement or an ``{include-group = ...}`` table. Its resolver then expands
the includes by recursion and keeps every copy: groups that include the next one
twice double at each level (40 levels of 2.5 KB grew to 2^40 requirements, 22 GB,
before the kernel killed tagmatrix) and a chain of 20,000 includes ends in a
RecursionError. So tagmatrix asks the library to parse each group (``lookup``) and
follows the includes itself: iteratively, each group resolved once and remembered,
its requirements deduplicated as they are collected (the same requirement twice
installs nothing more), a cycle refused as PEP 735 says, and depth, size and work
capped (a cap is a one-line error naming the group, never a slow run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_INCLUDE_DEPTH = 64  # nested include-group levels below a requested group
MAX_GROUP_REQUIREMENTS = 5_000  # distinct requirements one request may resolve to
MAX_GROUP_WORK = 1_000_000  # requirements copied from included groups, per project


class GroupError(ValueError):
    """A dependency group that cannot be resolved (the message names it)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def normalize(name: str) -> str:
    """PEP 735 compares group names as PEP 503 normalises package names."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class _Frame:
    """A group being resolved: its items still to read and what it has so far."""

    name: str
    items: Iterator[Any]
    found: dict[str, None] = field(default_factory=dict)  # an ordered set
    included: set[str] = field(default_factory=set)


class GroupResolver:
    """Resolves the groups of one ``[dependency-groups]`` table; every group is
    resolved at most once (later requests, e.g. one per matrix cell, are lookups)."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        from dependency_groups import DependencyGroupResolver

        try:
            self._parser = DependencyGroupResolver(table)
        except (TypeError, ValueError) as exc:  # not a table; two names that normalise alike
            raise GroupError(str(exc)) from exc
        self._done: dict[str, tuple[str, ...]] = {}
        self._requests: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._work = 0

    def resolve(self, names: Sequence[str]) -> tuple[str, ...]:
        """The requirement strings of ``names``, includes followed, each once, in the
        order they first appear."""
        key = tuple(normalize(n) for n in names)
        if key not in self._requests:
            found: dict[str, None] = {}
            for name in key:
                self._merge(found, self._group(name), name)
            self._requests[key] = tuple(found)
        return self._requests[key]

    def _items(self, name: str, parent: str | None) -> Iterator[Any]:
        try:
            return iter(self._parser.lookup(name))
        except LookupError as exc:
            if parent is None:
                raise GroupError(f"dependency group {name!r} does not exist") from exc
            raise GroupError(f"dependency group {parent!r} includes {name!r}, which does "
                             "not exist") from exc
        except (TypeError, ValueError) as exc:  # InvalidRequirement is a ValueError
            raise GroupError(f"dependency group {name!r}: {exc}") from exc

    def _group(self, start: str) -> tuple[str, ...]:
        if start in self._done:
            return self._done[start]
        stack = [_Frame(start, self._items(start, None))]
        while stack:
            frame = stack[-1]
            item = next(frame.items, None)
            if item is None:
                stack.pop()
                resolved = self._done[frame.name] = tuple(frame.found)
                if stack:
                    self._merge(stack[-1].found, resolved, stack[-1].name)
                continue
            include = getattr(item, "include_group", None)
            if include is None:  # a packaging Requirement
                frame.found.setdefault(str(item))
                self._check_size(frame.found, frame.name)
                continue
            name = normalize(include)
            if name in frame.included:
                continue  # the same include twice adds nothing
            frame.included.add(name)
            path = [f.name for f in stack]
            if name in path:
                cycle = " -> ".join([*path[path.index(name):], name])
                raise GroupError(f"dependency groups include each other in a cycle: {cycle}",
                                 "PEP 735 makes a cycle an error: break it")
            if name in self._done:
                self._merge(frame.found, self._done[name], frame.name)
            elif len(stack) > MAX_INCLUDE_DEPTH:
                raise GroupError(f"dependency group {start!r} nests include-group more than "
                                 f"{MAX_INCLUDE_DEPTH} levels deep (at {frame.name!r})",
                                 "include the groups you need directly")
            else:
                stack.append(_Frame(name, self._items(name, frame.name)))
        return self._done[start]

    def _merge(self, into: dict[str, None], items: tuple[str, ...], group: str) -> None:
        self._work += len(items)
        if self._work > MAX_GROUP_WORK:
            raise GroupError(f"dependency group {group!r}: resolving the groups copied more "
                             f"than {MAX_GROUP_WORK} requirements from included groups",
                             "include each group once, from fewer groups")
        into.update(dict.fromkeys(items))
        self._check_size(into, group)

    @staticmethod
    def _check_size(found: dict[str, None], group: str) -> None:
        if len(found) > MAX_GROUP_REQUIREMENTS:
            raise GroupError(f"dependency group {group!r} resolves to more than "
                             f"{MAX_GROUP_REQUIREMENTS} distinct requirements",
                             "a test environment needs far fewer; split the group")
