"""`evo pretrain`: train (or load from the cache) the float base model."""

from __future__ import annotations

import argparse

from evo.cli.args import add_data_args, model_args_of


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="train (or load from the cache) the float base model")
    add_data_args(p, required=True, weights=False)
    p.add_argument("--epochs", type=int, help="epochs (default: the model's recipe)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and the minibatch order (default 0, the base model searches "
                        "pretrain); every seed holds out the same validation split, the one runs validate on")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training images held out for validation (default 0.1, as runs do); a base "
                        "model for a run's --weights needs a share at least the run's val_fraction")
    p.add_argument("--cache-dir", help="checkpoint cache (default: $EVO_CACHE_DIR or ~/.cache/evo/checkpoints)")
    p.set_defaults(handler=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from hardware.checks import check_number
    from trainables.data import dataset_info
    from trainables.pretrain import pretrain
    from trainables.user_model import resolve_model

    check_number("val_fraction", args.val_fraction, above=0.0, below=0.5)  # as a run's (evo.runs.config)
    _, model_ref = resolve_model(args.model, model_args_of(args), **dataset_info(args.dataset))
    result = pretrain(args.model, args.dataset, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                      cache_dir=args.cache_dir, val_fraction=args.val_fraction, model_ref=model_ref)
    print(f"{args.model} on {args.dataset}: validation accuracy {result.val_accuracy:.4f}, "
          f"test accuracy {result.test_accuracy:.4f} ({'cached' if result.cached else 'trained'}: {result.path})")
    return 0
