"""The python image tag grammar and the built-in catalogue."""

from __future__ import annotations

import pytest

from orchestrator.tags import (
    Catalogue,
    TagSyntaxError,
    UnknownVersion,
    parse_variant,
    parse_version,
    tag_for,
)


@pytest.mark.parametrize("text", ["3", "3.14", "3.14.4", "3.15-rc", "3.15.0b3", "latest",
                                  "3.13.0rc2"])
def test_versions_of_the_grammar(text: str) -> None:
    assert parse_version(text).text == text


@pytest.mark.parametrize(("text", "suggestion"), [("py3.12", "3.12"), ("3.12-slim", None),
                                                  ("4.0", None), ("3.x", None), ("", None)])
def test_bad_versions(text: str, suggestion: str | None) -> None:
    with pytest.raises(TagSyntaxError) as info:
        parse_version(text)
    assert info.value.suggestion == suggestion


@pytest.mark.parametrize(("text", "platform"), [
    ("", "linux"), ("slim", "linux"), ("slim-bookworm", "linux"), ("slim-trixie", "linux"),
    ("bookworm", "linux"), ("trixie", "linux"), ("alpine", "linux"), ("alpine3.23", "linux"),
    ("windowsservercore", "windows"), ("windowsservercore-ltsc2022", "windows"),
    ("windowsservercore-ltsc2025", "windows")])
def test_variants_and_their_platform(text: str, platform: str) -> None:
    assert parse_variant(text).platform == platform


@pytest.mark.parametrize(("text", "suggestion"), [
    ("slimm", "slim"), ("alpin", "alpine"), ("slim-buster2", "slim-bullseye"), ("Slim", "slim"),
    ("qqq", None)])
def test_bad_variants_suggest(text: str, suggestion: str | None) -> None:
    with pytest.raises(TagSyntaxError) as info:
        parse_variant(text)
    assert info.value.suggestion == suggestion


def test_tag_for() -> None:
    assert tag_for("3.12", "slim") == "3.12-slim"
    assert tag_for("3.12", "") == "3.12"
    assert tag_for("latest", "slim") == "slim"
    assert tag_for("latest", "") == "latest"


def availability(version: str, variant: str) -> tuple[bool, str]:
    found = Catalogue.builtin().availability(parse_version(version), parse_variant(variant))
    return found.published, found.reason


def test_catalogue_knows_windows_starts_at_313() -> None:
    published, reason = availability("3.10", "windowsservercore")
    assert not published
    assert "3.10 has no Windows images (they start at 3.13)" in reason
    assert availability("3.13", "windowsservercore-ltsc2022")[0]
    assert availability("3.15-rc", "windowsservercore")[0]


def test_catalogue_resolves_rc_and_aliases() -> None:
    catalogue = Catalogue.builtin()
    found = catalogue.availability(parse_version("3.15-rc"), parse_variant("slim"))
    assert found.published
    assert found.resolved_version == "3.15.0b3"
    assert catalogue.release_for(parse_version("3")).family == "3.14"
    assert catalogue.release_for(parse_version("latest")).version == "3.14.6"
    assert availability("3.12", "alpine3.23")[0]
    assert not availability("3.12", "alpine3.19")[0]


def test_unknown_versions_are_refused_with_a_suggestion() -> None:
    catalogue = Catalogue.builtin()
    with pytest.raises(UnknownVersion) as info:
        catalogue.release_for(parse_version("3.15"))
    assert info.value.suggestion == "3.15-rc"
    with pytest.raises(UnknownVersion, match="not published yet"):
        catalogue.release_for(parse_version("3.14.99"))
    assert catalogue.release_for(parse_version("3.14.4")).family == "3.14"
    assert catalogue.release_for(parse_version("3.15.0b2")).family == "3.15-rc"


def test_published_tags_cover_aliases() -> None:
    tags = set(Catalogue.builtin().published_tags())
    assert {"3.12-slim", "3.12.13-slim-bookworm", "3.13-windowsservercore-ltsc2025",
            "3.15-rc-alpine", "3.10"} <= tags
    assert "3.10-windowsservercore" not in tags


def test_refreshed_catalogue_is_exactly_the_registry_tags() -> None:
    catalogue = Catalogue.from_tags({"3.12-slim", "3.12.1-slim", "3.13-slim", "3.13-alpine"},
                                    source="lab")
    assert catalogue.versions() == ["3.12", "3.12.1", "3.13"]
    catalogue.check_version(parse_version("3.12"))
    with pytest.raises(UnknownVersion) as info:
        catalogue.check_version(parse_version("3.14"))
    assert "lab" in str(info.value)
    assert info.value.suggestion in ("3.12", "3.13")
    assert catalogue.availability(parse_version("3.13"), parse_variant("alpine")).published
    found = catalogue.availability(parse_version("3.12"), parse_variant("alpine"))
    assert not found.published
    assert "python:3.12-alpine is not published (lab)" in found.reason
