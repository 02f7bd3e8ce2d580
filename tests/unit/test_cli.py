"""The CLI: exit codes, plan output, schema; no tracebacks for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from orchestrator.cli import main

Write = Callable[[str, str], Path]


def test_plan_json_lists_cells_with_state_and_reason(write: Write,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write("matrix.yaml", """
        matrix:
          python: ["3.10", "3.13"]
          variant: [slim, windowsservercore]
        allow_failure: [python=3.13]
    """)
    assert main(["plan", "-f", str(path), "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert [c["id"] for c in cells] == ["3.10-slim", "3.10-windowsservercore", "3.13-slim",
                                        "3.13-windowsservercore"]
    first = cells[0]
    assert set(first) >= {"id", "python", "variant", "axes", "image", "platform", "state",
                          "reason", "gating", "origin"}
    assert first["image"] == "docker.io/library/python:3.10-slim"
    assert first["version"] == "3.10.20"  # the catalogue's claim for the tag
    assert [c["state"] for c in cells] == ["planned", "skipped", "planned", "skipped"]
    assert [c["gating"] for c in cells] == [True, True, False, False]


def test_validate_ok_and_bad(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    good = write("good.yaml", 'matrix: {python: ["3.12"]}\n')
    assert main(["validate", "-f", str(good)]) == 0
    bad = write("bad.yaml", 'matrix: {python: ["3.12"]}\nparalel: 2\n')
    assert main(["validate", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:1: paralel: unknown key 'paralel'" in err
    assert "did you mean 'parallel'?" in err
    assert "Traceback" not in err


def test_schema_is_a_valid_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "matrix" in schema["properties"]


def test_usage_errors_exit_2(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write("matrix.yaml", 'matrix: {python: ["3.12"]}\nprofiles: {pr: {}}\n')
    assert main(["plan", "-f", str(path), "--only", "python=3.12,oops"]) == 2
    assert "--only 'python=3.12,oops'" in capsys.readouterr().err
    assert main(["plan", "-f", str(path), "--profile", "rp"]) == 2
    assert "no profile 'rp'" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_unreachable_engine_exits_3_with_one_line(write: Write, tmp_path: Path) -> None:
    path = write("matrix.yaml", 'matrix: {python: ["3.12"]}\n')
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "-f", str(path),
                           "--reports", str(tmp_path / "r"), "-v"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert done.stderr.count("cannot reach the Docker engine") == 1  # said once, even with -v
    assert "Traceback" not in done.stderr
    assert "tagmatrix: info: run " in done.stderr  # -v: labelled info, not "warning"
    assert "profile" not in done.stderr  # no "(profile None)" when there is none


def test_tags_builtin_works_when_the_file_no_longer_validates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import catalogue

    matrix = tmp_path / "matrix.yaml"
    # 3.16 exists only in a refreshed list; the built-in catalogue would refuse it
    matrix.write_text('image: {registry: "r.example:5000"}\nmatrix: {python: ["3.16"]}\n')
    saved = catalogue.cache_file("r.example:5000", "library/python")
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"tags": ["3.16-slim"], "refreshed_at": "now"}))
    assert main(["tags", "-f", str(matrix), "--builtin"]) == 0
    assert "refreshed list removed" in capsys.readouterr().out
    assert not saved.exists()
    assert f"uid-{os.getuid()}" in str(saved)  # scoped to this user


def test_clean_images_needs_a_project_or_all_projects(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clean", "--images"]) == 2
    assert "-f matrix.yaml, or say --all-projects" in capsys.readouterr().err


def test_a_document_the_schema_accepted_is_not_checked_again(tmp_path: Path) -> None:
    """validate's main cost is importing jsonschema: a document already accepted (the
    same values under the same schema and version) skips it; anything else is checked."""
    matrix = tmp_path / "matrix.yaml"
    env = {**os.environ, "TAGMATRIX_CACHE_DIR": str(tmp_path / "cache")}
    probe = ("import sys; from orchestrator.cli import main; code = main(['validate', '-f', "
             f"{str(matrix)!r}]); print('jsonschema' in sys.modules); sys.exit(code)")

    def validate() -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        return done.returncode, done.stdout.splitlines()[-1] if done.stdout else done.stderr

    matrix.write_text('matrix: {python: ["3.12"]}\nparallel: 2\n')
    assert validate() == (0, "True")  # checked, and remembered
    assert validate() == (0, "False")  # the same values: not checked again
    matrix.write_text('matrix: {python: ["3.12"]}\nparallel: 3\n')
    assert validate() == (0, "True")  # other values: checked
    matrix.write_text('matrix: {python: ["3.12"]}\nparallel: 0\n')
    code, _ = validate()
    assert code == 2  # refused, whatever was accepted before


def test_plan_shows_what_each_cell_installs(write: Write,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write("pyproject.toml", '[build-system]\nrequires = ["setuptools"]\n'
          'build-backend = "setuptools.build_meta"\n[project]\nname = "x"\nversion = "1"\n'
          '[project.optional-dependencies]\ntests = ["pytest"]\nmsgpack = ["msgpack"]\n')
    path = write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          deps: [latest, min]
          include:
            - {deps: min, install: {resolution: lowest-direct, extras: [msgpack]}}
        install: {extras: [tests]}
    """)
    assert main(["plan", "-f", str(path), "--json"]) == 0
    cells = {c["id"]: c["install"] for c in json.loads(capsys.readouterr().out)["cells"]}
    assert cells["3.12-latest"] == {"project": "sdist", "extras": ["tests"], "groups": [],
                                    "requirements": [], "resolution": "highest"}
    # an include entry's list replaces the top-level one (it is not merged)
    assert cells["3.12-min"]["extras"] == ["msgpack"]
    assert cells["3.12-min"]["resolution"] == "lowest-direct"
    assert main(["plan", "-f", str(path)]) == 0
    assert "sdist [tests] (highest)" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "code"), [(("plan",), 0), (("plan", "--only", "nothing=x"), 2)])
def test_a_reader_that_went_away_keeps_the_exit_code(write: Write, args: tuple[str, ...],
                                                     code: int) -> None:
    # `tagmatrix plan | head -1`: the pipe closes while tagmatrix prints; its exit code
    # is still the command's own, and no traceback
    path = write("matrix.yaml", 'matrix: {python: ["3.10", "3.11", "3.12", "3.13"]}\n')
    read, written = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "orchestrator", args[0], "-f", str(path),
                               *args[1:]], stdout=written, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    finally:
        os.close(written)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
