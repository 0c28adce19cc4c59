"""`evo pretrain`: train (or load from the cache) the float base model."""

from __future__ import annotations

import argparse

from evo.cli.args import add_data_args, model_args_of


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="train (or load from the cache) the float base model")
    add_data_args(p, required=True, weights=False)
    p.add_argument("--epochs", type=int, help="epochs (default: the model's recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="checkpoint cache (default: $EVO_CACHE_DIR or ~/.cache/evo/checkpoints)")
    p.set_defaults(handler=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from trainables.data import dataset_info
    from trainables.pretrain import pretrain
    from trainables.user_model import resolve_model

    _, model_ref = resolve_model(args.model, model_args_of(args), **dataset_info(args.dataset))
    result = pretrain(args.model, args.dataset, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                      cache_dir=args.cache_dir, model_ref=model_ref)
    print(f"{args.model} on {args.dataset}: validation accuracy {result.val_accuracy:.4f}, "
          f"test accuracy {result.test_accuracy:.4f} ({'cached' if result.cached else 'trained'}: {result.path})")
    return 0
