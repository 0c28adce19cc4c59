"""The end-of-search table: the Pareto policies next to the best uniform policy, on the test split."""

from __future__ import annotations

import json


def describe_policy(policy_json: str) -> str:
    """Short per-layer text such as 'conv1 s.50 w4a8 | fc2 s0 w8a8'."""
    data = json.loads(policy_json)
    channel = data.get("structure") == "channel"
    parts = []
    for name, lp in data["layers"].items():
        prune = f"r{lp['keep_ratio']:g}" if channel else f"s{lp['sparsity']:g}"
        parts.append(f"{name} {prune} w{lp['weight_bits']}a{lp['activation_bits']}")
    return " | ".join(parts)


def format_final_table(rows: list[dict], prep) -> str:
    if not rows:
        return "no policy reached the final evaluation"
    metric = prep.budget.metric
    header = (f"{'policy':<13} {'val acc':>8} {'test acc':>8} {'BOPs vs FP32':>12} {'vs INT8':>8} "
              f"{metric + '/limit':>16} {'size KiB':>9} {'energy uJ':>9} {'latency ms':>10}  per-layer (sparsity, bits)")
    lines = [f"final policies (fine-tuned {prep.cfg.final_steps} steps; test split evaluated once; "
             f"float base model test accuracy {prep.base_test_accuracy:.4f})", header, "-" * len(header)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['label']:<13} failed: {r.get('error')}")
            continue
        lines.append(
            f"{r['label']:<13} {r['accuracy']:>8.4f} {r['test_accuracy']:>8.4f} {r['bops_vs_fp32']:>11.1f}x "
            f"{r['bops_vs_int8']:>7.1f}x {r['cost'] / r['limit']:>16.3f} {r['size_bits'] / 8192:>9.2f} "
            f"{r['energy_pj'] / 1e6:>9.3f} {r['latency_s'] * 1e3:>10.4f}  {describe_policy(r['policy'])}"
        )
    best_front = max((r for r in rows if r["label"] == "pareto" and r["status"] == "ok"),
                     key=lambda r: r["test_accuracy"], default=None)
    uniform = next((r for r in rows if r["label"] == "best uniform" and r["status"] == "ok"), None)
    if best_front and uniform:
        gap = best_front["test_accuracy"] - uniform["test_accuracy"]
        lines.append(f"best evolved policy vs best uniform policy within the same budget: "
                     f"{gap * 100:+.2f} points of test accuracy")
    elif best_front:
        lines.append("no uniform policy of the search space fits the budget")
    return "\n".join(lines)
