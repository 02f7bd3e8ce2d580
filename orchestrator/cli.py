"""The ``tagmatrix`` command. The one place where errors become exit codes.

Exit codes: 0 every gating cell passed; 1 a gating cell failed, errored or
timed out; 2 bad configuration or usage; 3 the engine cannot be reached or
was lost; 4 a bug in tagmatrix; 128 + N cancelled by signal N (SIGHUP 129, SIGINT
130, SIGTERM 143 ...: errors.ExitCode). Start-up is kept cheap: the parser imports argparse
only, and the command's module is imported once the command is known.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the command, map errors to exit codes."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    return _command(args)


def _command(args: argparse.Namespace) -> int:
    """The command, once it is known: only now is more than argparse imported."""
    import json

    from .errors import Cancelled, ExitCode, TagmatrixError
    from .runlog import attach_stderr, detach

    warnings = attach_stderr(sys.stderr, verbose=getattr(args, "verbose", False))
    stdout = sys.stdout
    sys.stdout = _ClosedPipeGuard(stdout)
    try:
        if args.command == "schema":
            from .schema import schema

            print(json.dumps(schema(), indent=2))
            return 0
        from .commands import COMMANDS, Out

        return COMMANDS[args.command](args, Out())
    except Cancelled as exc:
        print(f"tagmatrix: {exc}", file=sys.stderr)
        return exc.exit_code
    except TagmatrixError as exc:
        print(f"tagmatrix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outside `run` (plan, tags ...): nothing to clean up
        print("\ntagmatrix: interrupted", file=sys.stderr)
        return ExitCode.SIGINT
    finally:
        sys.stdout = stdout
        detach(warnings)


class _ClosedPipeGuard:
    """sys.stdout that outlives its reader (``tagmatrix run | head -3``): the run is not
    cut short by a BrokenPipeError and exits with its own code; what it prints after the
    reader left goes to /dev/null, as Python's documentation on SIGPIPE advises."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding ...: the stream's
        return getattr(self._stream, name)
