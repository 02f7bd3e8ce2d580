"""A corpus of malformed matrix.yaml files: each gets exit 2 and a one-line,
line-numbered error that names the key and, where one exists, the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main

OK_MATRIX = 'matrix:\n  python: ["3.12"]\n'

# (name, text, line the error must point at, a fragment the message must contain)
CORPUS: list[tuple[str, str, int, str]] = [
    ("unknown top-level key", OK_MATRIX + "paralel: 2\n", 3, "did you mean 'parallel'"),
    ("unknown key in image", OK_MATRIX + "image:\n  regsitry: x\n", 4, "did you mean 'registry'"),
    ("unknown key in test", OK_MATRIX + "test:\n  timout: 5\n", 4, "did you mean 'timeout'"),
    ("unknown key in build", OK_MATRIX + "build:\n  dockerfil: D\n", 4, "did you mean"),
    ("parallel is a string", OK_MATRIX + "parallel: two\n", 3, "expected an integer"),
    ("parallel is zero", OK_MATRIX + "parallel: 0\n", 3, "at least 1"),
    ("negative timeout", OK_MATRIX + "test:\n  timeout: -5\n", 4, "greater than 0"),
    ("command is a number", OK_MATRIX + "test:\n  command: 42\n", 4, "expected"),
    ("empty command string", OK_MATRIX + "test:\n  command: ''\n", 4, "empty"),
    ("empty command list", OK_MATRIX + "test:\n  command: []\n", 4, "must not be empty"),
    ("unbalanced quotes", OK_MATRIX + "test:\n  command: pytest -k 'a\n", 4, "quotes"),
    ("float trap 3.10", "matrix:\n  python: [3.10]\n", 2, "read by YAML as the number 3.1"),
    ("unquoted integer version", "matrix:\n  python: [3]\n", 2, 'quote it: "3"'),
    ("unquoted 3.12", "matrix:\n  python:\n    - 3.12\n", 3, "YAML number"),
    ("float trap in include", OK_MATRIX + "  include:\n    - python: 3.10\n", 4, "3.1"),
    ("duplicate top-level key", OK_MATRIX + "parallel: 1\nparallel: 2\n", 4, "duplicate key"),
    ("duplicate axis key", 'matrix:\n  python: ["3.12"]\n  python: ["3.13"]\n', 3, "duplicate"),
    ("tab indentation", 'matrix:\n\tpython: ["3.12"]\n', 2, "tabs"),
    ("empty axis", "matrix:\n  python: []\n", 2, "must not be empty"),
    ("axis is not a list", 'matrix:\n  python: "3.12"\n', 2, "expected a list"),
    ("same value twice", 'matrix:\n  python: ["3.12", "3.12"]\n', 2, "same value twice"),
    ("malformed version", 'matrix:\n  python: ["3.1O"]\n', 2, "not a python image version"),
    ("version with prefix", 'matrix:\n  python: ["py3.12"]\n', 2, "did you mean '3.12'"),
    ("malformed variant", OK_MATRIX + "  variant: [slimm]\n", 3, "did you mean 'slim'"),
    ("unknown version", 'matrix:\n  python: ["3.9"]\n', 2, "hint: `tagmatrix tags` lists"),
    ("rc without -rc", 'matrix:\n  python: ["3.15"]\n', 2, "did you mean '3.15-rc'"),
    ("include that adds nothing", OK_MATRIX + '  include:\n    - {python: "3.12"}\n', 4,
     "adds nothing"),
    ("include new cell without python", OK_MATRIX + "  variant: [slim]\n  include:\n"
     "    - {variant: alpine}\n", 5, "no 'python'"),
    ("exclude unknown key", OK_MATRIX + "  variant: [slim]\n  exclude:\n    - {varient: x}\n",
     5, "did you mean 'variant'"),
    ("exclude is not a list", OK_MATRIX + "  exclude: {python: '3.12'}\n", 3, "expected a list"),
    ("include entry not a mapping", OK_MATRIX + "  include:\n    - 3.12\n", 4,
     "expected a mapping"),
    ("include timeout not a number", OK_MATRIX + '  include:\n    - {python: "3.12", '
     "timeout: slow}\n", 4, "expected a number"),
    ("bad pull policy", OK_MATRIX + "image:\n  pull: sometimes\n", 4, "one of 'missing'"),
    ("bad build mode", OK_MATRIX + "build:\n  mode: mounted\n", 4, "did you mean 'mount'"),
    ("setup without mount mode", OK_MATRIX + "build:\n  setup: pip install .\n", 4,
     "only with build.mode: mount"),
    ("missing dockerfile", OK_MATRIX + "build:\n  dockerfile: Nope.Dockerfile\n", 4,
     "does not exist"),
    ("missing project folder", "project: ./nope\n" + OK_MATRIX, 1, "does not exist"),
    ("top level is a list", "- matrix\n", 1, "must be a mapping"),
    ("unterminated quote", 'matrix:\n  python: ["3.12]\n', 3, "invalid YAML"),
    ("undefined alias", OK_MATRIX + "test: *nothing\n", 3, "invalid YAML"),
    ("matrix missing", "parallel: 2\n", 1, "missing required key 'matrix'"),
    ("no python axis", "matrix:\n  variant: [slim]\n", 1, "no 'python' axis"),
    ("reserved axis name", OK_MATRIX + "  timeout: [1, 2]\n", 3, "reserved"),
    ("bad env name", OK_MATRIX + "test:\n  env:\n    1BAD: x\n", 5, "1BAD"),
    ("secret from unset variable", OK_MATRIX + "test:\n  env:\n    TOKEN: {from_env: "
     "TAGMATRIX_SURELY_UNSET_VAR}\n", 5, "is not set"),
    ("bad allow_failure selector", OK_MATRIX + "allow_failure: ['python=3.12,oops']\n", 3,
     "bad selector"),
    ("profile with unknown key", OK_MATRIX + "profiles:\n  pr:\n    paralell: 1\n", 5,
     "did you mean 'parallel'"),
    ("profile is not a mapping", OK_MATRIX + "profiles:\n  pr: [1]\n", 4, "expected a mapping"),
    # selectors that could never match (issue 12)
    ("allow_failure key no cell has", OK_MATRIX + 'allow_failure: [{pythn: "3.12"}]\n', 3,
     "did you mean 'python'"),
    ("allow_failure string key no cell has", OK_MATRIX + "allow_failure: ['pyton=3.12']\n", 3,
     "no cell has a key 'pyton'"),
    ("engine cells key no cell has", OK_MATRIX + "engines:\n  a: {type: docker, cells: "
     "[{varient: slim}]}\n", 4, "no cell has a key 'varient'"),
    ("include key near an axis", OK_MATRIX + "  variant: [slim]\n  include:\n"
     '    - {pyton: "3.12", extra: x}\n', 5, "did you mean 'python'"),
    # names typed by users (issue 12)
    ("repository in upper case", OK_MATRIX + "image:\n  repository: Library/Python\n", 4,
     "did you mean 'library/python'"),
    ("registry with a scheme", OK_MATRIX + "image:\n  registry: https://r.example\n", 4,
     "not a registry host"),
    ("registry with a newline", OK_MATRIX + 'image:\n  registry: "a\\nb"\n', 4,
     "not a registry host"),
    ("build arg with a dash", OK_MATRIX + "build:\n  args: {MY-ARG: x}\n", 4, "MY-ARG"),
    # hostile values (issue 13)
    ("axis named on", OK_MATRIX + "  on: [a, b]\n", 3, "read by YAML as the boolean true"),
    ("axis named 1", OK_MATRIX + "  1: [a, b]\n", 3, "read by YAML as the number 1"),
    ("axis named a=b", OK_MATRIX + "  a=b: [x]\n", 3, "not an axis name"),
    ("env key that is a number", OK_MATRIX + "test:\n  env:\n    1: x\n", 5,
     "read by YAML as the number"),
    ("timeout nan", OK_MATRIX + "test:\n  timeout: .nan\n", 4, "not a finite number"),
    ("timeout inf", OK_MATRIX + "test:\n  timeout: .inf\n", 4, "not a finite number"),
    ("timeout of a year", OK_MATRIX + "test:\n  timeout: 31536000\n", 4, "at most 604800"),
    ("parallel 10^20", OK_MATRIX + "parallel: 100000000000000000000\n", 3, "at most 256"),
    ("memory over a terabyte", OK_MATRIX + "limits:\n  memory: 2000g\n", 4,
     "more than 1 TiB"),
    ("too many cells", OK_MATRIX + "  a: [" + ", ".join(str(i) for i in range(120)) + "]\n"
     "  b: [" + ", ".join(str(i) for i in range(100)) + "]\n", 1, "more than max_cells"),
    ("axis value of 300 characters", OK_MATRIX + "  deps: [" + "x" * 300 + "]\n", 3,
     "at most 200 printable characters"),
    ("axis value with a NUL", OK_MATRIX + '  deps: ["a\\0b"]\n', 3, "printable characters"),
    ("axis value with an escape", OK_MATRIX + '  deps: ["\\e[2J"]\n', 3, "'\\x1b' found"),
    ("include value with a carriage return", OK_MATRIX + '  include:\n    - {python: "3.12", '
     'deps: "a\\rb"}\n', 4, "printable characters"),
    ("axes differing only in case", OK_MATRIX + "  deps: [a]\n  DEPS: [b]\n", 4,
     "both would be MATRIX_DEPS"),
    ("include key differing from an axis in case", OK_MATRIX + "  deps: [a]\n  include:\n"
     '    - {python: "3.12", Deps: b}\n', 5, "write 'deps'"),
    ("history kept forever", OK_MATRIX + "history: {keep: 2000000000}\n", 3,
     "must be at most 10000"),
    ("shell operator in a command", OK_MATRIX + "test:\n  command: pip install x && pytest\n",
     4, "'&&' is shell syntax"),
    ("capability that is not addable", OK_MATRIX + "limits:\n  cap_add: [SYS_ADMIN]\n", 4,
     "one of"),
    ("network host", OK_MATRIX + "network: host\n", 3, "one of 'bridge', 'none'"),
    ("network none on a Swarm", OK_MATRIX + "network: none\nengines:\n  c: {type: swarm, "
     "registry: r.example}\n", 3, "not available on the Swarm engine 'c'"),
    ("project outside the repository", OK_MATRIX + "project: /etc\n", 3,
     "the matrix file's folder (or its git repository)"),
    ("dockerfile outside the project", OK_MATRIX + "build:\n  dockerfile: ../Dockerfile\n",
     4, "outside the project folder"),
    # the install section (issue 11)
    ("install group that does not exist", OK_MATRIX + "install:\n  groups: [tests]\n", 4,
     "dependency group 'tests'"),
    ("install requirements file missing", OK_MATRIX + "install:\n  requirements: "
     "[req-test.txt]\n", 4, "req-test.txt does not exist"),
    ("install package not a requirement", OK_MATRIX + "install:\n  packages: ['pytest >=> 8']\n",
     4, "not a requirement"),
    ("install unknown key", OK_MATRIX + "install:\n  extra: [tests]\n", 4,
     "did you mean 'extras'"),
    ("install project kind typo", OK_MATRIX + "install:\n  project: sdsit\n", 4,
     "did you mean 'sdist'"),
    # build contexts (the context-hardening review)
    ("max_context not a size", OK_MATRIX + "build:\n  max_context: lots\n", 4,
     "build.max_context: 'lots' does not match"),
    ("max_context of zero", OK_MATRIX + "build:\n  max_context: 0k\n", 4,
     "0 bytes is not between 1 byte and 1 TiB"),
    ("max_context over a terabyte", OK_MATRIX + "build:\n  max_context: 2000g\n", 4,
     "is not between 1 byte and 1 TiB"),
]

# Malformed .dockerignore files, refused by `validate` with the matrix file's line of
# `project:` (name, project files, matrix text, line, fragment)
IGNORE_CORPUS: list[tuple[str, dict[str, str], str, int, str]] = [
    (".dockerignore over the pattern cap", {".dockerignore": "\n".join(
        f"**/p{i}/**" for i in range(1001))}, "project: .\n" + OK_MATRIX, 1,
     "has 1001 patterns, over tagmatrix's cap of 1000"),
    (".dockerignore pattern over the length cap", {".dockerignore": "a" * 5000},
     "project: .\n" + OK_MATRIX, 1, "a pattern of 5000 characters"),
    (".dockerignore over the byte cap", {".dockerignore": "\n".join(
        "x" * 1000 for _ in range(200))}, "project: .\n" + OK_MATRIX, 1,
     "bytes of patterns, over tagmatrix's cap of 131072"),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    names = [name for name, *_ in CORPUS] + [name for name, *_ in IGNORE_CORPUS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_config_exits_2_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: tuple[str, str, int, str]) -> None:
    name, text, line, fragment = case
    path = tmp_path / "matrix.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", "-f", str(path)]) == 2, name
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"tagmatrix: error: {path}:{line}:"), err
    assert fragment in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", IGNORE_CORPUS, ids=[c[0] for c in IGNORE_CORPUS])
def test_a_malformed_dockerignore_exits_2_with_the_line_of_project(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: tuple[str, dict[str, str], str, int, str]) -> None:
    name, files, text, line, fragment = case
    for relative, body in files.items():
        (tmp_path / relative).write_text(body, encoding="utf-8")
    path = tmp_path / "matrix.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", "-f", str(path)]) == 2, name
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f"tagmatrix: error: {path}:{line}:"), err
    assert fragment in err, err
    assert "Traceback" not in err



# Hostile project files behind a valid matrix.yaml (issue: install hardening): the files,
# then the line of matrix.yaml the error points at and a fragment of its message.
_DEEP_CHAIN = "\n".join(["[dependency-groups]", *(f'g{i} = [{{include-group = "g{i + 1}"}}]'
                                                  for i in range(20_000)), 'g20000 = ["x"]'])
GROUPS = OK_MATRIX + "install:\n  groups: [g0]\n"
REQUIREMENTS = OK_MATRIX + "install:\n  requirements: [a.txt]\n"
PROJECT_CORPUS: list[tuple[str, str, dict[str, str], int, str]] = [
    ("include-group chain of 20000", GROUPS, {"pyproject.toml": _DEEP_CHAIN}, 4,
     "nests include-group more than 64 levels deep"),
    ("pyproject nested 300000 deep", OK_MATRIX, {"pyproject.toml": "x = " + "[" * 300_000}, 1,
     "pyproject.toml nests arrays or tables too deeply"),
    ("dependency group too large", GROUPS, {"pyproject.toml": "[dependency-groups]\ng0 = ["
                                            + ", ".join(f'"p{i}"' for i in range(5001)) + "]"},
     4, "more than 5000 distinct requirements"),
    ("dependency group cycle", GROUPS, {"pyproject.toml": "[dependency-groups]\n"
                                        'g0 = [{include-group = "g1"}]\n'
                                        'g1 = [{include-group = "g0"}]\n'}, 4,
     "cycle: g0 -> g1 -> g0"),
    ("pip variable in a requirements path", REQUIREMENTS,
     {"a.txt": "-r ${HOME}/x.txt\n", "${HOME}/x.txt": "pytest\n"}, 4,
     "${HOME} is expanded by pip inside the container, so tagmatrix cannot check what this "
     "line names (a.txt:1)"),
    ("file option sharing its line", REQUIREMENTS, {"a.txt": "pytest\n--pre -r b.txt\n",
                                                    "b.txt": "attrs\n"}, 4,
     "a file option shares its line with another option; pip would read it differently "
     "from tagmatrix (a.txt:2)"),
    ("ambiguous option abbreviation", REQUIREMENTS, {"a.txt": "--requ b.txt\n",
                                                     "b.txt": "attrs\n"}, 4,
     "ambiguous option: --requ"),
    ("requirements files of 120000 lines", REQUIREMENTS,
     {"a.txt": "-r b.txt\n" + "pytest\n" * 60_000, "b.txt": "attrs\n" * 60_000}, 4,
     "more than 100000 lines in all"),
    ("extra that is not a name", OK_MATRIX + "install:\n  extras: ['tests]; x']\n",
     {"setup.py": "from setuptools import setup\nsetup()\n"}, 4, "is not an extra name"),
]


def test_the_project_corpus_names_are_unique() -> None:
    assert len({name for name, *_ in PROJECT_CORPUS}) == len(PROJECT_CORPUS)


@pytest.mark.parametrize("case", PROJECT_CORPUS, ids=[c[0] for c in PROJECT_CORPUS])
def test_a_hostile_project_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: tuple[str, str, dict[str, str], int, str]) -> None:
    name, text, files, line, fragment = case
    for relative, body in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(body, encoding="utf-8")
    path = tmp_path / "matrix.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", "-f", str(path)]) == 2, name
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f"tagmatrix: error: {path}:{line}:"), err
    assert fragment in err.splitlines()[0], err
    assert "Traceback" not in err
