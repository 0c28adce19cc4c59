"""The `evo` command line: one module per command, each with ``register(subparsers)`` that adds its
parser and sets ``handler``; shared argument groups live in :mod:`evo.cli.args`.

Every input is validated before Ray starts; a bad value exits with code 2 and a message
naming it and the valid choices, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from evo.cli import baseline, compare, export, pretrain, profile, search

__all__ = ["build_parser", "main"]

COMMANDS = (pretrain, profile, search, baseline, compare, export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evo", description="Search per-layer compression policies for a hardware budget.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.handler(args)
    except ValueError as err:  # bad input: nothing was written
        print(f"evo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a run that could not finish (it says how to go on)
        print(f"evo {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"evo {args.command}: interrupted; a search continues with --resume", file=sys.stderr)
        return 130
