"""Entry point of the `ossy` command: builds the argument parser and turns user errors into
one-line messages with a non-zero exit (never a traceback).

Owns: dispatch and error presentation. Each subcommand lives in its own module under
`ossy.cli` exposing `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ossy import __version__
from ossy.errors import USER_ERRORS

# Modules under ossy.cli that register subcommands, in the order `ossy --help` lists them.
COMMAND_MODULES = ["models", "show", "serve", "run", "pull", "ps", "tools", "audit", "index", "train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ossy", description="Run gpt-oss models locally.")
    parser.add_argument("--version", action="version", version=f"ossy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ossy.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ossy show X | head`: the reader left; say nothing more
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
