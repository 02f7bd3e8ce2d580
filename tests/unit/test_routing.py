"""Routing cells to engines by platform, pins and --engine (engines described, not contacted)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.matrix import Cell, Selector
from orchestrator.plan import PLANNED, SKIPPED, make_plan
from orchestrator.routing import Target, route
from orchestrator.settings import EngineType

Write = Callable[[str, str], Path]

LINUX = Target(name="local", type=EngineType.DOCKER, oses=frozenset({"linux"}))
SWARM = Target(name="cluster", type=EngineType.SWARM, oses=frozenset({"linux"}))
WINDOWS = Target(name="win", type=EngineType.DOCKER, oses=frozenset({"windows"}))


def cell(python: str = "3.13", variant: str = "slim") -> Cell:
    return Cell(id=f"{python}-{variant}", python=python, variant=variant)


def test_cells_go_to_an_engine_of_their_platform() -> None:
    assert route(cell(), "linux", [WINDOWS, LINUX]).engine == "local"
    assert route(cell(variant="windowsservercore"), "windows", [LINUX, WINDOWS]).engine == "win"


def test_no_engine_for_the_platform_is_a_reason() -> None:
    found = route(cell(variant="windowsservercore"), "windows", [LINUX, SWARM])
    assert found.engine is None
    assert found.reason == "no Windows engine configured"


def test_pinned_cells_go_to_their_engine_and_only_there() -> None:
    fast = Target(name="fast", type=EngineType.DOCKER, oses=frozenset({"linux"}),
                  pins=(Selector.parse("python=3.13"),))
    assert route(cell("3.13"), "linux", [LINUX, fast]).engine == "fast"
    assert route(cell("3.12"), "linux", [LINUX, fast]).engine == "local"
    # an engine with pins takes nothing else
    assert route(cell("3.12"), "linux", [fast]).reason == "no Linux engine configured"


def test_forced_engine() -> None:
    assert route(cell(), "linux", [LINUX, SWARM], forced="cluster").engine == "cluster"
    wrong = route(cell(), "linux", [LINUX, WINDOWS], forced="win")
    assert wrong.engine is None
    assert "engine win runs windows containers; this cell needs linux" in wrong.reason
    assert route(cell(), "linux", [LINUX], forced="nope").reason == "no engine named 'nope'"


def test_mount_mode_never_goes_to_swarm() -> None:
    assert route(cell(), "linux", [SWARM, LINUX], mount=True).engine == "local"
    found = route(cell(), "linux", [SWARM], mount=True)
    assert found.engine is None
    assert "mount mode needs the project folder on the engine's host" in found.reason


def test_plan_routes_with_declared_engines(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.13"]
          variant: [slim, windowsservercore]
        engines:
          local: {type: docker}
          cluster: {type: swarm, registry: "127.0.0.1:5000"}
          win: {type: docker, base_url: "tcp://win-builder:2376", tls: true, platform: windows}
    """))
    jobs = make_plan(config, config.catalogue).jobs
    assert [(j.id, j.state, j.engine) for j in jobs] == [
        ("3.13-slim", PLANNED, "local"), ("3.13-windowsservercore", PLANNED, "win")]
    forced = make_plan(config, config.catalogue, engine="cluster").jobs
    assert [(j.state, j.engine) for j in forced] == [(PLANNED, "cluster"), (SKIPPED, "")]
    assert "needs windows" in forced[1].reason
