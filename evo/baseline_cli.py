"""`evo baseline admm ...`: the command line of the constrained-gradient baseline.

``register(subparsers)`` adds the ``baseline`` command to evo's parser; every method parser
sets ``handler`` so ``evo.cli.main`` dispatches with ``args.handler(args)``. Values are
checked (ValueError naming the bad value) before anything is written or Ray starts.
"""

from __future__ import annotations

import argparse
import dataclasses

from trainables.knapsack import PAPER_LENET5, QUANTIZERS, ADMMSettings  # numpy only: `evo --help` stays fast

# flag destination -> ADMMSettings field
ADMM_FLAGS = ("epochs", "fine_tune_epochs", "rho", "lr", "fine_tune_lr", "momentum", "weight_decay", "batch_size",
              "quantizer", "initial_bits")
RUN_FLAGS = ("model", "dataset", "data_dir", "seeds", "activation_bits", "target", "pretrain_epochs", "storage",
             "name", "address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "verbose")


def register(subparsers) -> None:
    baseline = subparsers.add_parser("baseline", help="run a baseline under the same budgets and cost accounting")
    methods = baseline.add_subparsers(dest="method", required=True)
    p = methods.add_parser(
        "admm", help="ADMM joint sparsity-quantization (Yang et al., CVPR 2020)",
        description="One Ray Tune trial per budget x seed. Defaults are a few-minute CPU run; --paper takes the "
                    "published LeNet-5 recipe (120 epochs, lr 0.1 cosine, momentum 0.93, wd 5e-4, batch 256).")
    p.add_argument("--model", required=True, help="model name (lenet5, resnet20, mlp)")
    p.add_argument("--dataset", required=True, help="dataset name (fashion-mnist, digits, cifar10)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
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
    p.add_argument("--storage", help="folder holding run folders (default runs)")
    p.add_argument("--name", help="run folder name under --storage (default admm)")
    p.add_argument("--resume", action="store_true", help="run only the budget x seed pairs not finished yet")
    p.add_argument("--address", help="join a running Ray cluster ('auto' or host:port)")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float)
    p.add_argument("--max-concurrent", type=int)
    p.add_argument("-v", "--verbose", type=int, choices=[0, 1, 2, 3], help="Ray Tune's own progress output")
    p.set_defaults(handler=cmd_admm)


def config_from_args(args: argparse.Namespace):
    """Flags over the defaults (or over the paper's recipe with --paper)."""
    from evo.baseline_admm import ADMMConfig

    base = PAPER_LENET5 if args.paper else ADMMSettings()
    admm = dataclasses.replace(base, **{k: getattr(args, k) for k in ADMM_FLAGS if getattr(args, k) is not None})
    run = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k, None) is not None}
    return ADMMConfig(budgets=tuple(args.budgets), admm=admm, **run)


def cmd_admm(args: argparse.Namespace) -> int:
    from evo.baseline_admm import run_admm_baseline

    run_admm_baseline(config_from_args(args), resume=args.resume)
    return 0
