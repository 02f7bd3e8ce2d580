"""The ``tagmatrix`` command. The one place where errors become exit codes.

Exit codes: 0 every gating cell passed; 1 a gating cell failed, errored or
timed out; 2 bad configuration or usage; 3 the engine cannot be reached or
was lost; 4 a bug in tagmatrix; 129 / 130 / 143 cancelled by SIGHUP / SIGINT /
SIGTERM (errors.ExitCode). Start-up is kept cheap: the parser imports argparse
only, and the command's module is imported once the command is known.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
        detach(warnings)
