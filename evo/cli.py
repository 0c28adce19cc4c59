"""The `evo` command line: pretrain, profile, search (baseline and compare come from their modules).

Every input is validated before Ray starts; a bad value exits with code 2 and a message
naming it and the valid choices, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys


def _add_data_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--model", required=required, help="model name (lenet5, resnet20, mlp)")
    p.add_argument("--dataset", required=required, help="dataset name (fashion-mnist, digits, cifar10)")
    p.add_argument("--data-dir", help="folder holding the dataset files (default: the Debian package's folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evo", description="Search per-layer compression policies for a hardware budget.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="train (or load from the cache) the float base model")
    _add_data_args(p, required=True)
    p.add_argument("--epochs", type=int, help="epochs (default: the model's recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="checkpoint cache (default: $EVO_CACHE_DIR or ~/.cache/evo/checkpoints)")

    p = sub.add_parser("profile", help="per-layer shapes and costs of a model, float or under a policy")
    _add_data_args(p, required=True)
    p.add_argument("--policy", help="policy file (YAML or JSON) to price")
    p.add_argument("--target", default=None, help="hardware target name or YAML path")
    p.add_argument("--json", action="store_true", help="print one JSON object with 'layers' and 'totals'")

    p = sub.add_parser("search", help="evolve compression policies (no arguments: the embedded default)")
    add_search_args(p)

    from evo.baseline_cli import register as register_baselines
    from evo.baseline_search_cli import register as register_search_baselines
    from evo.compare_cli import register as register_compare

    register_baselines(sub)  # evo baseline admm
    register_search_baselines(sub)  # evo baseline uniform|random|optuna
    register_compare(sub)
    return parser


def add_search_args(p: argparse.ArgumentParser) -> None:
    from evo.config import preset_names

    p.add_argument("--config", help="YAML file of settings (see evo/presets/default.yaml)")
    p.add_argument("--preset", help=f"named preset: {', '.join(preset_names())} (default: default)")
    _add_data_args(p)
    p.add_argument("--budget", help="e.g. bops=1/512, bops=0.02xfp32, size=1/50, energy=1/20, latency=0.5xfp32")
    p.add_argument("--target", help="hardware target name or YAML path")
    p.add_argument("--generations", type=int)
    p.add_argument("--population", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--fine-tune-steps", type=int, dest="fine_tune_steps")
    p.add_argument("--storage", help="folder holding run folders (default: runs)")
    p.add_argument("--name", help="run folder name under --storage")
    p.add_argument("--resume", action="store_true", help="continue the run in <storage>/<name>")
    p.add_argument("--address", help="join a running Ray cluster ('auto' or host:port)")
    p.add_argument("--gpus-per-trial", type=float, dest="gpus_per_trial")
    p.add_argument("--cpus-per-trial", type=float, dest="cpus_per_trial")
    p.add_argument("--max-concurrent", type=int, dest="max_concurrent",
                   help="trials at once (default: as many as the cluster holds at start; more: the extra "
                        "trials wait for nodes that join, e.g. from the autoscaler)")
    p.add_argument("-v", "--verbose", type=int, choices=[0, 1, 2, 3], help="Ray Tune's own progress output")


SEARCH_OVERRIDES = ("model", "dataset", "data_dir", "budget", "target", "generations", "population", "seed",
                    "fine_tune_steps", "storage", "name", "address", "gpus_per_trial", "cpus_per_trial",
                    "max_concurrent", "verbose")


def config_from_args(args):
    from evo.config import resolve_config

    overrides = {k: getattr(args, k, None) for k in SEARCH_OVERRIDES}
    return resolve_config(args.preset, args.config, overrides)


def cmd_pretrain(args) -> int:
    from trainables.pretrain import pretrain

    result = pretrain(args.model, args.dataset, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                      cache_dir=args.cache_dir)
    print(f"{args.model} on {args.dataset}: validation accuracy {result.val_accuracy:.4f}, "
          f"test accuracy {result.test_accuracy:.4f} ({'cached' if result.cached else 'trained'}: {result.path})")
    return 0


def cmd_profile(args) -> int:
    from hardware.cost import layer_costs, total_costs
    from hardware.policy import Policy
    from hardware.profiler import profile_model
    from hardware.targets import DEFAULT_TARGET, load_target
    from trainables.data import dataset_info
    from trainables.models import create_model

    target = load_target(args.target or DEFAULT_TARGET)
    info = dataset_info(args.dataset)
    policy_arg = Policy.load(args.policy) if args.policy else None
    model = create_model(args.model, in_channels=info["in_channels"], num_classes=info["num_classes"],
                         image_shape=info["image_shape"])
    specs = profile_model(model, info["image_shape"])
    policy = policy_arg or Policy.float([s.name for s in specs])
    policy.check_matches([s.name for s in specs])
    layers = layer_costs(specs, policy, target)
    totals = total_costs(specs, policy, target)
    if args.json:
        print(json.dumps({"model": args.model, "dataset": args.dataset, "target": target.name,
                          "policy": policy.to_dict(), "layers": layers, "totals": totals}))
        return 0
    from evo.profile_table import format_profile

    print(format_profile(layers, totals, title=f"{args.model} on {args.dataset}, target {target.name}"
                                               f"{', policy ' + args.policy if args.policy else ', float'}"))
    return 0


def cmd_search(args) -> int:
    from evo.search import run_search

    cfg = config_from_args(args)
    run_search(cfg, resume=args.resume)
    return 0


COMMANDS = {"pretrain": cmd_pretrain, "profile": cmd_profile, "search": cmd_search}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except ValueError as err:  # bad input: nothing was written
        print(f"evo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a run that could not finish (it says how to go on)
        print(f"evo {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"evo {args.command}: interrupted; a search continues with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
