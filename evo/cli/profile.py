"""`evo profile`: per-layer shapes and costs of a model, float or under a policy, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from evo.cli.args import add_data_args, model_args_of

COLUMNS = (
    ("name", "layer", "<14", str),
    ("kind", "type", "<6", str),
    ("shape", "shape", "<14", str),
    ("params", "params", ">9", lambda v: f"{v:,}"),
    ("nnz", "nnz", ">9", lambda v: f"{v:,}"),
    ("weight_bits", "w", ">3", str),
    ("activation_bits", "a", ">3", str),
    ("macs", "MACs", ">11", lambda v: f"{v:,}"),
    ("bops", "BOPs", ">15", lambda v: f"{v:,.0f}"),
    ("size_bits", "size bits", ">11", lambda v: f"{v:,.0f}"),
    ("size_bits_honest", "honest bits", ">12", lambda v: f"{v:,.0f}"),
    ("energy_pj", "energy uJ", ">10", lambda v: f"{v / 1e6:.3f}"),
    ("latency_s", "latency us", ">11", lambda v: f"{v * 1e6:.2f}"),
)


def register(subparsers) -> None:
    p = subparsers.add_parser("profile", help="per-layer shapes and costs of a model, float or under a policy")
    add_data_args(p, required=True, weights=False)
    p.add_argument("--policy", help="policy file (YAML or JSON) to price")
    p.add_argument("--target", default=None, help="hardware target name or YAML path")
    p.add_argument("--json", action="store_true", help="print one JSON object with 'layers' and 'totals'")
    p.set_defaults(handler=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    from hardware.cost import layer_costs, total_costs
    from hardware.policy import Policy
    from hardware.profiler import profile_model
    from hardware.targets import DEFAULT_TARGET, load_target
    from trainables.data import dataset_info
    from trainables.user_model import resolve_model

    target = load_target(args.target or DEFAULT_TARGET)
    info = dataset_info(args.dataset)
    policy_arg = Policy.load(args.policy) if args.policy else None
    model, _ = resolve_model(args.model, model_args_of(args), **info)
    specs = profile_model(model, info["image_shape"])
    policy = policy_arg or Policy.float([s.name for s in specs])
    policy.check_matches([s.name for s in specs])
    layers = layer_costs(specs, policy, target)
    totals = total_costs(specs, policy, target)
    if args.json:
        print(json.dumps({"model": args.model, "dataset": args.dataset, "target": target.name,
                          "policy": policy.to_dict(), "layers": layers, "totals": totals}))
        return 0
    print(format_profile(layers, totals, title=f"{args.model} on {args.dataset}, target {target.name}"
                                               f"{', policy ' + args.policy if args.policy else ', float'}"))
    return 0


def format_profile(layers: list[dict], totals: dict, title: str) -> str:
    """The human-readable table: one row per layer, a total row, the reductions."""
    header = " ".join(f"{label:{align}}" for _, label, align, _ in COLUMNS)
    lines = [title, header, "-" * len(header)]
    for row in layers:
        lines.append(" ".join(f"{fmt(row[key]):{align}}" for key, _, align, fmt in COLUMNS))
    total = {**{k: "" for k, *_ in COLUMNS}, **{k: totals[k] for k, *_ in COLUMNS if k in totals}}
    total.update(name="total", kind="", shape="", weight_bits="", activation_bits="")
    lines.append("-" * len(header))
    lines.append(" ".join(f"{(fmt(total[key]) if total[key] != '' else ''):{align}}" for key, _, align, fmt in COLUMNS))
    lines.append(f"BOPs reduction: {totals['bops_vs_fp32']:.3g}x vs FP32, {totals['bops_vs_int8']:.3g}x vs uniform INT8; "
                 f"size (Yang et al.'s count): {totals['size_bits'] / 8192:.2f} KiB, with indices/scales/biases: "
                 f"{totals['size_bits_honest'] / 8192:.2f} KiB")
    return "\n".join(lines)
