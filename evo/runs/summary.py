"""The end-of-search table: the Pareto policies next to the best uniform policy, on the test split."""

from __future__ import annotations

import json


def describe_policy(policy_json: str, fixed_pruning=()) -> str:
    """Short per-layer text such as 'conv1 s.50 w4a8 | fc2 s0 w8a8'; the layers of
    ``fixed_pruning`` (a keep ratio that is never applied) show their bits only."""
    data = json.loads(policy_json)
    channel = data.get("structure") == "channel"
    parts = []
    for name, lp in data["layers"].items():
        prune = "" if channel and name in fixed_pruning else f"r{lp['keep_ratio']:g} " if channel \
            else f"s{lp['sparsity']:g} "
        parts.append(f"{name} {prune}w{lp['weight_bits']}a{lp['activation_bits']}")
    return " | ".join(parts)


def format_final_table(rows: list[dict], prep, *, versus_uniform: bool = False) -> str:
    """The final policies, one line each; with ``versus_uniform`` (evo search) a last line compares
    the best evolved policy with the best uniform one. Both are chosen by VALIDATION accuracy (after
    the final fine-tune); the test split only reports the chosen policies' accuracy."""
    if not rows:
        return "no policy reached the final evaluation"
    metric = prep.budget.metric
    width = max(13, *(len(r["label"]) for r in rows))
    header = (f"{'policy':<{width}} {'val acc':>8} {'test acc':>8} {'BOPs vs FP32':>12} {'vs INT8':>8} "
              f"{metric + '/limit':>16} {'size KiB':>9} {'energy uJ':>9} {'latency ms':>10}  per-layer (sparsity, bits)")
    lines = [f"final policies (fine-tuned {prep.cfg.final_steps} steps; test split evaluated once; "
             f"float base model test accuracy {prep.base_test_accuracy:.4f})", header, "-" * len(header)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['label']:<{width}} failed: {r.get('error')}")
            continue
        lines.append(
            f"{r['label']:<{width}} {r['accuracy']:>8.4f} {r['test_accuracy']:>8.4f} {r['bops_vs_fp32']:>11.1f}x "
            f"{r['bops_vs_int8']:>7.1f}x {r['cost'] / r['limit']:>16.3f} {r['size_bits'] / 8192:>9.2f} "
            f"{r['energy_pj'] / 1e6:>9.3f} {r['latency_s'] * 1e3:>10.4f}  {describe_policy(r['policy'], prep.space.fixed_pruning)}"
        )
    if not versus_uniform:
        return "\n".join(lines)
    ok = [r for r in rows if r["status"] == "ok"]
    best_front = max((r for r in ok if r["label"].startswith("pareto")), key=lambda r: r["accuracy"], default=None)
    uniform = next((r for r in ok if r["label"].endswith("best uniform")), None)
    if best_front is not None and uniform is not None:
        gap = best_front["test_accuracy"] - uniform["test_accuracy"]
        same = " (the same policy: the best uniform policy is on the front)" if best_front is uniform else ""
        lines.append(f"best evolved policy vs best uniform policy within the same budget, each chosen by validation "
                     f"accuracy: {gap * 100:+.2f} points of test accuracy{same}")
    elif best_front is not None:
        lines.append("no uniform policy of the search space fits the budget")
    return "\n".join(lines)
