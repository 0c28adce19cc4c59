"""`evo baseline uniform|random|optuna`: the command lines of the search baselines.

They take `evo search`'s flags (preset < --config < flags), so a baseline runs under the same
model, data, budget, target, genome space, seed, trial count and fine-tune steps as the search
it is compared with. Without --name the run folder is ``<name>-<method>`` (e.g. runs/smoke-random
next to `evo search --preset smoke`'s runs/smoke).

Wiring: evo/baseline_cli.py creates the ``baseline`` group; ``register_methods(methods)`` adds
these three methods to it. ``register(subparsers)`` does both when the group is not there yet.
Both are idempotent, so calling them twice changes nothing.
"""

from __future__ import annotations

import argparse

HELP = {
    "uniform": "every uniform policy within the budget, screened with the search's fine-tune steps",
    "random": "Ray Tune random search (repaired random genomes), population x generations trials",
    "optuna": "Ray Tune's OptunaSearch with constrained NSGA-II; needs pip install 'evo[optuna]'",
}


def register(subparsers) -> None:
    """Add ``baseline`` (if missing) and its uniform/random/optuna methods to evo's parser."""
    baseline = subparsers.choices.get("baseline")
    if baseline is None:
        baseline = subparsers.add_parser("baseline", help="run a baseline under the same budget and cost accounting")
    methods = next((a for a in baseline._actions if isinstance(a, argparse._SubParsersAction)), None)
    if methods is None:
        methods = baseline.add_subparsers(dest="method", required=True)
    register_methods(methods)


def register_methods(methods) -> None:
    """Add the uniform, random and optuna sub-commands to the ``baseline`` group's subparsers."""
    from evo.cli import add_search_args

    for method, text in HELP.items():
        if method in methods.choices:
            continue
        p = methods.add_parser(method, help=text, description=f"{text}. Takes the flags of `evo search`; the "
                               "run folder gets method "
                               f"{method!r} and the schema `evo compare` reads.")
        add_search_args(p)
        p.set_defaults(handler=cmd_baseline, baseline_method=method)


def baseline_config(args: argparse.Namespace):
    """`evo search`'s config from the flags; without --name the folder is <name>-<method>."""
    from evo.cli import config_from_args

    if args.resume:
        raise ValueError(f"--resume: evo baseline {args.baseline_method} does not resume; start a new run with --name")
    cfg = config_from_args(args)
    return cfg if args.name is not None else cfg.replace(name=f"{cfg.name}-{args.baseline_method}")


def cmd_baseline(args: argparse.Namespace) -> int:
    from evo.baselines import check_method, run_baseline

    check_method(args.baseline_method)  # optuna missing: a clear message before anything runs
    run_baseline(args.baseline_method, baseline_config(args))
    return 0
