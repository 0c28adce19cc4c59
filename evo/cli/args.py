"""Argument groups shared by several commands, and the search config built from them."""

from __future__ import annotations

import argparse

SEARCH_OVERRIDES = ("model", "model_args", "weights", "dataset", "data_dir", "budget", "target", "generations", "population", "seed",
                    "fine_tune_steps", "rungs", "rung_factor", "pretrain_epochs", "storage", "name", "address", "gpus_per_trial", "cpus_per_trial",
                    "max_concurrent", "verbose")


def add_data_args(p: argparse.ArgumentParser, *, required: bool = False, weights: bool = True) -> None:
    p.add_argument("--model", required=required,
                   help="a zoo model (lenet5, resnet20, mlp) or your own: path/to/file.py:function or "
                        "package.module:function returning an nn.Module")
    p.add_argument("--model-args", dest="model_args", metavar="JSON",
                   help='keyword arguments of your model function, e.g. \'{"width": 2}\'')
    if weights:
        p.add_argument("--weights", help="a state_dict checkpoint (torch.save(model.state_dict())) used as the base "
                                         "model instead of pretraining")
    p.add_argument("--dataset", required=required,
                   help="fashion-mnist, digits, cifar10, a path/to/data.npz (x_train, y_train, x_test, y_test; "
                        "optionally x_val, y_val) or package.module:function returning those arrays")
    p.add_argument("--data-dir", help="folder holding a built-in dataset's files (default: the Debian package's folder)")


def model_args_of(args: argparse.Namespace) -> dict | None:
    """--model-args parsed from JSON (None when not given)."""
    if getattr(args, "model_args", None) is None:
        return None
    from trainables.user_model import parse_model_args

    return parse_model_args(args.model_args)


def add_ray_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="folder holding run folders (default: runs)")
    p.add_argument("--address", help="join a running Ray cluster ('auto' or host:port)")
    p.add_argument("--gpus-per-trial", type=float, dest="gpus_per_trial")
    p.add_argument("--cpus-per-trial", type=float, dest="cpus_per_trial")
    p.add_argument("--max-concurrent", type=int, dest="max_concurrent",
                   help="trials at once (default: as many as the cluster holds at start; more: the extra "
                        "trials wait for nodes that join, e.g. from the autoscaler)")
    p.add_argument("-v", "--verbose", type=int, choices=[0, 1, 2, 3], help="Ray Tune's own progress output")


def add_search_args(p: argparse.ArgumentParser) -> None:
    """`evo search`'s flags; the uniform/random/optuna baselines take the same ones."""
    from evo.runs.config import preset_names

    p.add_argument("--config", help="YAML file of settings (see evo/runs/presets/default.yaml)")
    p.add_argument("--preset", help=f"named preset: {', '.join(preset_names())} (default: default)")
    add_data_args(p)
    p.add_argument("--budget", help="e.g. bops=1/512, bops=0.02xfp32, size=1/50, energy=1/20, latency=0.5xfp32")
    p.add_argument("--target", help="hardware target name or YAML path")
    p.add_argument("--generations", type=int)
    p.add_argument("--population", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--fine-tune-steps", type=int, dest="fine_tune_steps")
    p.add_argument("--rungs", type=int, help="successive-halving rungs per generation (1: off; evo search only)")
    p.add_argument("--rung-factor", type=int, dest="rung_factor",
                   help="successive halving: 1/F of a rung is promoted to an F times longer fine-tune")
    p.add_argument("--pretrain-epochs", type=int, dest="pretrain_epochs",
                   help="base model epochs when evo pretrains it (default: the model's recipe; not with --weights)")
    p.add_argument("--name", help="run folder name under --storage")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in <storage>/<name> (evo search only; the uniform, random and optuna "
                        "baselines do not resume)")
    add_ray_args(p)


def config_from_args(args: argparse.Namespace):
    """preset < --config file < flags."""
    from evo.runs.config import resolve_config

    overrides = {k: getattr(args, k, None) for k in SEARCH_OVERRIDES}
    overrides["model_args"] = model_args_of(args)
    return resolve_config(args.preset, args.config, overrides)
