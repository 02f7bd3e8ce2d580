"""matrix.yaml loading: defaults, values, and errors that name file, line and key."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.errors import ConfigError, UsageError

Write = Callable[[str, str], Path]

BASIC = """
    project: .
    image:
      registry: 127.0.0.1:5000
    matrix:
      python: ["3.10", "3.11", "3.12", "3.13"]
      variant: [slim]
      exclude:
        - {python: "3.10", variant: slim}
    build:
      dockerfile: Dockerfile
    test:
      command: python -m pytest -q tests
      junit: /tmp/junit.xml
      timeout: 600
    parallel: 2
"""


def test_the_foundation_keys(write: Write) -> None:
    write("Dockerfile", "ARG PYTHON_IMAGE\nFROM $PYTHON_IMAGE\n")
    config = load_config(write("matrix.yaml", BASIC))
    assert [c.id for c in config.cells] == ["3.11-slim", "3.12-slim", "3.13-slim"]
    assert config.image.reference("3.12-slim") == "127.0.0.1:5000/library/python:3.12-slim"
    assert config.test.command == ("python", "-m", "pytest", "-q", "tests")
    assert config.test.junit == "/tmp/junit.xml"
    assert config.test.timeout == 600.0
    assert config.parallel == 2
    assert config.build.dockerfile == "Dockerfile"


def test_defaults(write: Write) -> None:
    config = load_config(write("matrix.yaml", 'matrix: {python: ["3.12"]}\n'))
    assert config.image.registry == "docker.io"
    assert config.image.repository == "library/python"
    assert config.test.command == ("python", "-m", "pytest")
    assert config.build.mode == "image"
    assert [c.tag for c in config.cells] == ["3.12"]


def test_command_as_list_and_user_axis_numbers_keep_their_text(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix:
          python: ["3.12"]
          shard: [1, 2.10]
        test:
          command: [pytest, -k, "not slow"]
    """))
    assert config.test.command == ("pytest", "-k", "not slow")
    assert [dict(c.axes)["shard"] for c in config.cells] == ["1", "2.10"]


@pytest.mark.parametrize(("text", "line", "needle"), [
    ('matrix:\n  pyton: ["3.12"]\n  python: ["3.12"]\ntest:\n  comand: pytest\n', 5,
     "unknown key 'comand'"),
    ('matrix:\n  python: [3.10]\n', 2, "read by YAML as the number 3.1"),
    ('matrix:\n  python: ["3.12"]\nparallel: 2\nparallel: 3\n', 4, "duplicate key 'parallel'"),
    ('matrix:\n\tpython: ["3.12"]\n', 2, "invalid YAML"),
    ('matrix:\n  python: []\n', 2, "must not be empty"),
    ('matrix:\n  python: ["3.12"]\nparallel: two\n', 3, "expected an integer"),
])
def test_errors_name_file_line_and_key(write: Write, text: str, line: int, needle: str) -> None:
    path = write("matrix.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert needle in message


def test_unknown_key_suggests_the_fix(write: Write) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write("matrix.yaml", 'matrix: {python: ["3.12"]}\ntset: {}\n'))
    assert "did you mean 'test'?" in str(info.value)


def test_float_trap_says_how_to_quote(write: Write) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write("matrix.yaml", "matrix:\n  python: [3.12, 3.10]\n"))
    assert 'quote it: "3.12"' in str(info.value)
    assert "matrix.python[0]" in str(info.value)


def test_bad_tag_suggests(write: Write) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write("matrix.yaml", 'matrix:\n  python: ["3.12"]\n  variant: [slimm]\n'))
    assert "did you mean 'slim'?" in str(info.value)
    assert ":3:" in str(info.value)


def test_unknown_version_is_a_config_error_with_suggestion(write: Write) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write("matrix.yaml", 'matrix:\n  python: ["3.12", "3.15"]\n'))
    assert ":2:" in str(info.value)
    assert "did you mean '3.15-rc'?" in str(info.value)


def test_missing_dockerfile_is_named(write: Write) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(write("matrix.yaml", 'matrix: {python: ["3.12"]}\nbuild: {dockerfile: D}\n'))


def test_exclude_key_must_be_an_axis(write: Write) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write("matrix.yaml", """
            matrix:
              python: ["3.12"]
              variant: [slim]
              exclude:
                - {varient: slim}
        """))
    assert "did you mean 'variant'?" in str(info.value)
    assert ":5:" in str(info.value)


def test_missing_file_and_empty_file(tmp_path: Path, write: Write) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_config(write("matrix.yaml", "# nothing\n"))


def test_profile_overlay_merges_mappings_and_replaces_lists(write: Write) -> None:
    path = write("matrix.yaml", """
        matrix:
          python: ["3.12", "3.13"]
          variant: [slim, alpine]
        allow_failure: [python=3.13]
        profiles:
          pr:
            matrix:
              python: ["3.13"]
          release:
            allow_failure: []
    """)
    pr = load_config(path, profile="pr")
    assert [c.id for c in pr.cells] == ["3.13-slim", "3.13-alpine"]
    assert len(pr.allow_failure) == 1
    release = load_config(path, profile="release")
    assert len(release.cells) == 4
    assert release.allow_failure == ()
    with pytest.raises(UsageError, match="did you mean 'release'"):
        load_config(path, profile="relase")


def test_profile_errors_point_into_the_profile(write: Write) -> None:
    path = write("matrix.yaml", """
        matrix:
          python: ["3.12"]
        profiles:
          pr:
            parallel: 0
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path, profile="pr")
    assert f"{path}:5:" in str(info.value)
    assert "at least 1" in str(info.value)


def test_limits(write: Write) -> None:
    config = load_config(write("matrix.yaml", """
        matrix: {python: ["3.12"]}
        limits: {memory: 512m, cpus: 1.5, pids: 256}
    """))
    assert config.limits.memory == 512 * 1024**2
    assert config.limits.nano_cpus == 1_500_000_000
    assert config.limits.pids == 256
    default = load_config(write("m2.yaml", 'matrix: {python: ["3.12"]}\n')).limits
    assert (default.memory, default.nano_cpus, default.pids) == (4 * 1024**3, None, 4096)
    with pytest.raises(ConfigError, match="minimum of 6 MiB"):
        load_config(write("m3.yaml", 'matrix: {python: ["3.12"]}\nlimits: {memory: 1k}\n'))


def test_mount_mode_refuses_a_folder_holding_a_socket_anywhere(write: Write,
                                                               tmp_path: Path) -> None:
    matrix = write("matrix.yaml", 'matrix: {python: ["3.12"]}\nbuild: {mode: mount}\n')
    load_config(matrix)  # no socket: fine
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(deep / "docker.sock"))
        with pytest.raises(ConfigError, match=r"a/b/c/docker\.sock is a socket"):
            load_config(matrix)


def test_mount_mode_refuses_system_folders() -> None:
    from orchestrator.project import mount_problem

    assert mount_problem(Path("/var/run")) == "/run is a system folder"  # /var/run -> /run
    assert mount_problem(Path("/")) == "/ is a system folder"


@pytest.mark.parametrize("project", ["/var/run", "../outside", "/etc"])
def test_a_project_outside_the_matrix_files_repository_is_refused(
        tmp_path: Path, project: str) -> None:
    (tmp_path / "outside").mkdir()
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    matrix = checkout / "matrix.yaml"
    matrix.write_text(f'project: {project}\nmatrix: {{python: ["3.12"]}}\n')
    with pytest.raises(ConfigError, match=r"matrix.yaml:1:10: project: project folder .* is "
                                          r"outside .*checkout, the matrix file's folder"):
        load_config(matrix)


def test_a_matrix_file_in_a_subfolder_may_point_up_to_its_repository(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "ci").mkdir()
    matrix = tmp_path / "ci" / "matrix.yaml"
    matrix.write_text('project: ..\nmatrix: {python: ["3.12"]}\n')
    assert load_config(matrix).project == tmp_path.resolve()


def test_mount_mode_checks_a_deeply_nested_checkout_without_crashing(tmp_path: Path) -> None:
    from orchestrator.project import mount_problem

    chain = [os.open(tmp_path, os.O_RDONLY)]  # one level at a time: Path.mkdir(parents=True)
    try:                                       # and shutil.rmtree recurse too
        for _ in range(1100):  # os.walk recursed once per level: RecursionError at ~1,000
            os.mkdir("d", dir_fd=chain[-1])
            chain.append(os.open("d", os.O_RDONLY, dir_fd=chain[-1]))
        assert mount_problem(tmp_path) is None
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / "d" / "s.sock"))
            assert mount_problem(tmp_path) == f"{tmp_path / 'd' / 's.sock'} is a socket"
        (tmp_path / "d" / "s.sock").unlink()
    finally:
        os.close(chain.pop())
        while chain:
            parent = chain.pop()
            os.rmdir("d", dir_fd=parent)
            os.close(parent)


@pytest.mark.parametrize(("value", "shown"), [(r'"a\0b"', r"'\x00'"), (r'"\e[31mred"', r"'\x1b'"),
                                              (r'"one\rtwo"', r"'\r'"),
                                              (r'"a\u2028b"', r"'\u2028'")])
def test_a_matrix_value_with_a_control_character_is_refused(write: Write, value: str,
                                                            shown: str) -> None:
    for i, text in enumerate((f'matrix: {{python: ["3.12"], deps: [{value}]}}\n',
                              f'matrix:\n  python: ["3.12"]\n  include:\n'
                              f'    - {{python: "3.12", deps: {value}}}\n')):
        with pytest.raises(ConfigError, match="printable characters") as caught:
            load_config(write(f"m{i}.yaml", text))
        assert shown in str(caught.value)
        assert "deps" in str(caught.value)


def test_axes_that_differ_only_in_case_are_refused(write: Write) -> None:
    with pytest.raises(ConfigError, match="differ only in case: both would be MATRIX_DEPS"):
        load_config(write("m.yaml", 'matrix: {python: ["3.12"], deps: [a], DEPS: [b]}\n'))
    with pytest.raises(ConfigError, match="only in case") as caught:
        load_config(write("n.yaml", 'matrix:\n  python: ["3.12"]\n  deps: [a]\n  include:\n'
                                    '    - {python: "3.12", Deps: b}\n'))
    assert "write 'deps'" in str(caught.value)


@pytest.mark.parametrize("path", ["/proc/kmsg", "/proc/self/status", "/dev/zero",
                                  "/sys/kernel/uevent_seqnum"])
def test_a_kernel_interface_is_no_matrix_file(path: str) -> None:
    # /proc/kmsg is a "regular file" whose read blocks until the kernel logs: never read
    with pytest.raises(ConfigError, match="a kernel interface under"):
        load_config(path)


def test_a_fifo_is_no_matrix_file_and_reading_it_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "matrix.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)
