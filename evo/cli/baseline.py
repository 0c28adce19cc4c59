"""`evo baseline admm|uniform|random|optuna`: the baselines, under the budget and cost accounting of
`evo search`.

uniform, random and optuna take `evo search`'s flags (preset < --config < flags), so a baseline runs
under the same model, data, budget, target, genome space, seed, trial count and fine-tune steps as the
search it is compared with; without --name the run folder is ``<name>-<method>`` (e.g. runs/smoke-random
next to `evo search --preset smoke`'s runs/smoke). admm has flags of its own (several budgets and seeds
per run, the ADMM recipe). Values are checked (ValueError naming the bad value) before anything is
written or Ray starts.
"""

from __future__ import annotations

import argparse
import dataclasses

from evo.cli.args import add_data_args, add_ray_args, add_search_args, config_from_args, model_args_of
from trainables.knapsack import PAPER_LENET5, QUANTIZERS, ADMMSettings  # numpy only: `evo --help` stays fast

HELP = {
    "uniform": "the least-pruned uniform policy of each bit pair within the budget, screened with the "
               "search's fine-tune steps",
    "random": "Ray Tune random search (repaired random genomes), population x generations trials",
    "optuna": "Ray Tune's OptunaSearch with constrained NSGA-II; needs pip install 'evo[optuna]'",
}
# flag destination -> ADMMSettings field
ADMM_FLAGS = ("epochs", "fine_tune_epochs", "rho", "lr", "fine_tune_lr", "momentum", "weight_decay", "batch_size",
              "quantizer", "initial_bits")
RUN_FLAGS = ("model", "model_args", "weights", "dataset", "data_dir", "seeds", "activation_bits", "target", "pretrain_epochs", "storage",
             "name", "address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "verbose")


def register(subparsers) -> None:
    baseline = subparsers.add_parser("baseline", help="run a baseline under the same budget and cost accounting")
    methods = baseline.add_subparsers(dest="method", required=True)
    p = methods.add_parser(
        "admm", help="ADMM joint sparsity-quantization (Yang et al., CVPR 2020)",
        description="One Ray Tune trial per budget x seed. Defaults are a few-minute CPU run; --paper takes the "
                    "published LeNet-5 recipe (120 epochs, lr 0.1 cosine, momentum 0.93, wd 5e-4, batch 256).")
    add_data_args(p, required=True)
    p.add_argument("--budget", required=True, action="append", dest="budgets",
                   help="size=1/50 (the paper's count: kept weights x bits) or bops=1/512 (extension); repeatable")
    p.add_argument("--seeds", type=int, help="seeds per budget, 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, help=f"ADMM epochs (default {ADMMSettings.epochs})")
    p.add_argument("--fine-tune-epochs", type=int, help=f"epochs with mask and bits fixed (default "
                                                        f"{ADMMSettings.fine_tune_epochs})")
    p.add_argument("--rho", type=float, help=f"ADMM penalty (default {ADMMSettings.rho})")
    p.add_argument("--quantizer", help=f"{' or '.join(QUANTIZERS)}: the paper's k-means codebook or the evolved "
                                       "policies' uniform per-channel grid (default kmeans)")
    p.add_argument("--lr", type=float, help=f"ADMM learning rate, cosine (default {ADMMSettings.lr})")
    p.add_argument("--fine-tune-lr", type=float, help=f"default {ADMMSettings.fine_tune_lr}")
    p.add_argument("--momentum", type=float, help=f"default {ADMMSettings.momentum}")
    p.add_argument("--weight-decay", type=float, help=f"default {ADMMSettings.weight_decay}")
    p.add_argument("--batch-size", type=int, help=f"default {ADMMSettings.batch_size}")
    p.add_argument("--initial-bits", type=int, help=f"bits of the first sparse projection (default "
                                                    f"{ADMMSettings.initial_bits})")
    p.add_argument("--paper", action="store_true", help="start from the published LeNet-5 recipe; flags still win")
    p.add_argument("--activation-bits", type=int, help="fixed activation bits of a BOPs budget (default 8)")
    p.add_argument("--target", help="hardware target name or YAML path (default bitserial)")
    p.add_argument("--pretrain-epochs", type=int, help="base model epochs (default: the model's recipe)")
    p.add_argument("--name", help="run folder name under --storage (default admm)")
    p.add_argument("--resume", action="store_true", help="run only the budget x seed pairs not finished yet")
    add_ray_args(p)
    p.set_defaults(handler=cmd_admm)
    for method, text in HELP.items():
        p = methods.add_parser(method, help=text, description=f"{text}. Takes the flags of `evo search`; the "
                               f"run folder gets method {method!r} and the schema `evo compare` reads.")
        add_search_args(p)
        p.set_defaults(handler=cmd_baseline, baseline_method=method)


def admm_config(args: argparse.Namespace):
    """Flags over the defaults (or over the paper's recipe with --paper)."""
    from evo.methods.admm import ADMMConfig

    base = PAPER_LENET5 if args.paper else ADMMSettings()
    admm = dataclasses.replace(base, **{k: getattr(args, k) for k in ADMM_FLAGS if getattr(args, k) is not None})
    run = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k, None) is not None}
    if "model_args" in run:
        run["model_args"] = model_args_of(args)
    return ADMMConfig(budgets=tuple(args.budgets), admm=admm, **run)


def cmd_admm(args: argparse.Namespace) -> int:
    from evo.methods import run_method

    run_method("admm", admm_config(args), resume=args.resume)
    return 0


def baseline_config(args: argparse.Namespace):
    """`evo search`'s config from the flags; without --name the folder is <name>-<method>."""
    if args.resume:
        raise ValueError(f"--resume: evo baseline {args.baseline_method} does not resume; start a new run with --name")
    cfg = config_from_args(args)
    return cfg if args.name is not None else cfg.replace(name=f"{cfg.name}-{args.baseline_method}")


def cmd_baseline(args: argparse.Namespace) -> int:
    from evo.methods import run_method

    run_method(args.baseline_method, baseline_config(args))
    return 0
