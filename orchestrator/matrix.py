"""Pure matrix expansion: axes x exclude x include -> cells.

Semantics follow GitHub Actions' ``strategy.matrix``:

1. the product of the axes, first axis outermost;
2. ``exclude``: an entry removes every cell whose values match all its keys;
3. ``include``: for each entry, every cell (of the product, after exclude)
   whose *original* axis values all equal the entry's values for those axes
   gets the entry's other keys added; added keys may be overwritten by later
   entries, original values never. An entry that matches no cell becomes a new
   cell of its own.

Cell ids are built from values only (never positions), so they are stable when
unrelated parts of the matrix change, and are safe as file names.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .envvar import EnvVar
from .tags import tag_for

PRIMARY_AXES = ("python", "variant")
# Keys an include entry may carry that are per-cell settings, not matrix values.
OVERRIDE_KEYS = ("timeout", "env", "command", "install")


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """Per-cell settings set by include entries."""

    timeout: float | None = None
    env: tuple[EnvVar, ...] = ()  # a secret keeps its flag (and is redacted)
    command: tuple[str, ...] | None = None
    # install: keys (validated values, see settings.InstallSettings), each replacing
    # the top-level value
    install: tuple[tuple[str, object], ...] = ()

    def merged(self, later: Overrides) -> Overrides:
        env = {e.name: e for e in self.env}
        env.update((e.name, e) for e in later.env)
        install = dict(self.install)
        install.update(later.install)
        return Overrides(
            timeout=later.timeout if later.timeout is not None else self.timeout,
            env=tuple(env.values()),
            command=later.command if later.command is not None else self.command,
            install=tuple(install.items()),
        )


@dataclass(frozen=True, kw_only=True)
class IncludeEntry:
    """One ``matrix.include`` item: matrix values plus optional overrides."""

    values: tuple[tuple[str, str], ...]
    overrides: Overrides = field(default_factory=Overrides)
    index: int = 0


@dataclass(frozen=True, kw_only=True)
class MatrixSpec:
    """The ``matrix:`` section after validation (all values are strings)."""

    axes: tuple[tuple[str, tuple[str, ...]], ...]
    exclude: tuple[tuple[tuple[str, str], ...], ...] = ()
    include: tuple[IncludeEntry, ...] = ()

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.axes)


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One combination of the matrix."""

    id: str
    python: str
    variant: str
    # Every other matrix value: user axes in declaration order, then keys
    # added by include entries in the order they were first added.
    axes: tuple[tuple[str, str], ...] = ()
    origin: str = "product"  # or "include"
    overrides: Overrides = field(default_factory=Overrides)

    @property
    def tag(self) -> str:
        return tag_for(self.python, self.variant)

    def values(self) -> dict[str, str]:
        """All matrix values, python and variant included."""
        return {"python": self.python, "variant": self.variant, **dict(self.axes)}


class ExpansionError(ValueError):
    """The matrix cannot be expanded; ``index`` says which include entry."""

    def __init__(self, message: str, *, section: str, index: int | None = None) -> None:
        super().__init__(message)
        self.section = section
        self.index = index


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _slug(value: str) -> str:
    return _UNSAFE.sub("_", value).strip("_") or "_"


MAX_ID = 100  # cell ids name files (logs/<id>.log) and containers: bounded


def cell_id(values: Mapping[str, str], identity: Sequence[str]) -> str:
    """``3.12-slim`` plus the values of the identity axes: ``3.12-slim-min``. A long id
    keeps its head and ends with a digest of the whole, so it stays unique and fits a
    file name."""
    parts = [_slug(tag_for(values.get("python", ""), values.get("variant", "")))]
    parts.extend(_slug(values[k]) for k in identity if k in values and k not in PRIMARY_AXES)
    found = "-".join(parts)
    if len(found) <= MAX_ID:
        return found
    digest = hashlib.sha256(found.encode()).hexdigest()[:12]
    return f"{found[:MAX_ID - 13].rstrip('-._')}-{digest}"


def _matches_exactly(values: Mapping[str, str], entry: Sequence[tuple[str, str]]) -> bool:
    return all(values.get(k) == v for k, v in entry)


@dataclass(frozen=True)
class Combination:
    """One expanded combination, before it becomes a :class:`Cell`."""

    values: dict[str, str]
    origin: str  # "product" or "include"
    overrides: Overrides
    include_index: int | None = None  # the include entry that created it


def combinations(spec: MatrixSpec) -> list[Combination]:
    """GitHub Actions' expansion, for any keys: product, exclude, then include."""
    names = spec.axis_names
    combos: list[dict[str, str]] = []
    if names:
        for combo in itertools.product(*(values for _, values in spec.axes)):
            combos.append(dict(zip(names, combo, strict=True)))
    combos = [c for c in combos if not any(_matches_exactly(c, e) for e in spec.exclude)]

    extras: list[dict[str, str]] = [{} for _ in combos]
    overrides = [Overrides() for _ in combos]
    created: list[Combination] = []
    for entry in spec.include:
        original = [(k, v) for k, v in entry.values if k in names]
        added = [(k, v) for k, v in entry.values if k not in names]
        matched = [i for i, c in enumerate(combos) if _matches_exactly(c, original)]
        if not matched:
            created.append(Combination(dict(entry.values), "include", entry.overrides,
                                       entry.index))
            continue
        if not added and entry.overrides == Overrides():
            raise ExpansionError(
                "this include entry matches existing cells but adds nothing to them",
                section="include", index=entry.index)
        for i in matched:
            extras[i].update(added)  # added values may be overwritten, original ones never
            overrides[i] = overrides[i].merged(entry.overrides)
    product = [Combination({**combo, **extra}, "product", override)
               for combo, extra, override in zip(combos, extras, overrides, strict=True)]
    return product + created


def expand(spec: MatrixSpec) -> list[Cell]:
    """Expand ``spec`` into cells, in a deterministic order (product, then new includes)."""
    names = spec.axis_names
    cells: list[Cell] = []
    taken: set[str] = set()
    for combo in combinations(spec):
        values = combo.values
        if combo.origin == "product":
            cell = _make_cell(values, names, "product", combo.overrides)
            if cell.id in taken:
                raise ExpansionError("two axis values differ only in characters that are not "
                                     "allowed in cell ids ([A-Za-z0-9._-]); rename one",
                                     section="matrix")
        else:
            if "python" not in values:
                raise ExpansionError("this include entry matches no cell, so it adds a new one, "
                                     "but it has no 'python'", section="include",
                                     index=combo.include_index)
            # A new cell is named like a product cell; only when that name is
            # taken do its extra keys join the id.
            cell = _make_cell(values, names, "include", combo.overrides)
            if cell.id in taken:
                cell = _make_cell(values, [*names, *values], "include", combo.overrides)
            if cell.id in taken:
                raise ExpansionError(f"this include entry adds a cell {cell.id!r} that already "
                                     "exists", section="include", index=combo.include_index)
        taken.add(cell.id)
        cells.append(cell)
    return cells


def _make_cell(values: dict[str, str], identity: Sequence[str], origin: str,
               overrides: Overrides) -> Cell:
    ordered = [k for k in identity if k in values and k not in PRIMARY_AXES]
    ordered += [k for k in values if k not in ordered and k not in PRIMARY_AXES]
    return Cell(
        id=cell_id(values, identity),
        python=values.get("python", ""),
        variant=values.get("variant", ""),
        axes=tuple((k, values[k]) for k in ordered),
        origin=origin,
        overrides=overrides,
    )


@dataclass(frozen=True)
class Selector:
    """Chooses cells: ``key=glob`` pairs (all must match) or a glob on the cell id."""

    pairs: tuple[tuple[str, str], ...] = ()
    id_glob: str | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Selector:
        """``python=3.12``, ``python=3.1*,variant=slim`` or ``3.15-rc-*`` (an id glob)."""
        text = text.strip()
        if not text:
            raise ValueError("an empty selector")
        if "=" not in text:
            return cls(id_glob=text, text=text)
        pairs = []
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{part!r} is not KEY=VALUE")
            pairs.append((key.strip(), value.strip()))
        return cls(pairs=tuple(pairs), text=text)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> Selector:
        pairs = tuple(mapping.items())
        return cls(pairs=pairs, text=",".join(f"{k}={v}" for k, v in pairs))

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.pairs)

    def matches(self, cell: Cell) -> bool:
        if self.id_glob is not None:
            return fnmatch.fnmatchcase(cell.id, self.id_glob)
        values = cell.values()
        return all(k in values and fnmatch.fnmatchcase(values[k], v) for k, v in self.pairs)
