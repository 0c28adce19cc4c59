"""`evo search`: evolve compression policies (no arguments: the embedded default)."""

from __future__ import annotations

import argparse

from evo.cli.args import add_search_args, config_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="evolve compression policies (no arguments: the embedded default)")
    add_search_args(p)
    p.set_defaults(handler=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from evo.methods import run_method

    run_method("evo", config_from_args(args), resume=args.resume)
    return 0
