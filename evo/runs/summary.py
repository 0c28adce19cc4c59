"""The end-of-search table: the Pareto policies next to the best uniform policy, on the test split."""

from __future__ import annotations

import json
import math
import statistics
from typing import Iterable, Mapping


def repeat_of(row: Mapping) -> int:
    """A final row's repeat (0 where the row has none: one seed, or an older run's row)."""
    value = row.get("repeat")
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def average_repeats(rows: Iterable[Mapping]) -> list[dict]:
    """One row per final policy (genome key) out of its repeats
    (``repeat`` 0, 1, ...: the same policy fine-tuned with other seeds), in first-seen order:
    the first repeat's row with ``accuracy`` and ``test_accuracy`` replaced by their means over
    the repeats that succeeded, ``val_std``/``test_std`` their sample standard deviations (NaN
    for one), ``repeats`` how many succeeded; a policy whose every repeat failed keeps its
    first failed row (``repeats`` 0)."""
    groups: dict = {}
    for index, row in enumerate(rows):
        key = row.get("genome_key")
        key = key if isinstance(key, str) and key else f"row {index}"  # a row without a genome stands alone
        groups.setdefault(key, []).append(dict(row))
    out = []
    for members in groups.values():
        members.sort(key=repeat_of)
        ok = [r for r in members if r.get("status") == "ok"]
        if not ok:
            out.append({**members[0], "repeats": 0, "val_std": math.nan, "test_std": math.nan})
            continue
        averaged = {**ok[0], "repeats": len(ok)}
        for column, spread in (("accuracy", "val_std"), ("test_accuracy", "test_std")):
            values = [float(r[column]) for r in ok if r.get(column) is not None and not math.isnan(float(r[column]))]
            averaged[column] = statistics.fmean(values) if values else ok[0].get(column)
            averaged[spread] = statistics.stdev(values) if len(values) > 1 else math.nan
        out.append(averaged)
    return out


# evo search's in-run uniform reference in the final phase: the final_uniform most accurate screened
# uniform policies, "uniform reference" (a run of an evo before final_uniform: its one "best uniform")
REFERENCE_LABELS = ("uniform reference", "best uniform")


def is_reference_only(label) -> bool:
    """A final row of the uniform reference alone (not also a front policy: "pareto, uniform
    reference" is one of the method's own finals), which compare and the plots leave out."""
    return label in REFERENCE_LABELS


def best_uniform_row(rows: Iterable[Mapping]) -> dict | None:
    """The best uniform policy of an evo search's final phase: among its ``average_repeats`` rows
    labelled as the uniform reference (alone or also on the front), the one with the best mean
    VALIDATION accuracy (``validation_rank``); None when there is none."""
    references = [r for r in rows if r.get("repeats", 1) > 0
                  and any(part in REFERENCE_LABELS for part in str(r.get("label") or "").split(", "))]
    return max(references, key=validation_rank, default=None)


def best_final(rows: Iterable[Mapping]) -> dict | None:
    """The final policy within the budget with the best MEAN validation accuracy over its seeds:
    its ``average_repeats`` row (first repeat's row, accuracies replaced by the means), or None when
    no final policy is within the budget. What `evo export` ships and ``evo.search`` returns (the
    final table's "best evolved" line chooses among the front's policies the same way); the test
    split never selects. Of two policies with the same mean validation accuracy the cheaper wins
    (the lower ``cost``; rows without one last). `evo compare` chooses each run's policy here too."""
    feasible = [r for r in rows if r.get("status") == "ok" and (r.get("violation") or 0) <= 0]
    return max(average_repeats(feasible), key=validation_rank, default=None)


def validation_rank(row: Mapping) -> tuple:
    """Sort key of a final policy: its (mean) validation accuracy, then the lower ``cost``
    (a row without one ranks below any that has one)."""
    cost = row.get("cost")
    cost = math.inf if cost is None or math.isnan(float(cost)) else float(cost)
    return row["accuracy"], -cost


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
    rows = average_repeats(rows)
    seeds = max(r["repeats"] for r in rows)
    metric = prep.budget.metric
    width = max(13, *(len(r["label"]) for r in rows))
    test_head = "test acc" if seeds < 2 else f"test acc (mean ± std, {seeds} seeds)"
    header = (f"{'policy':<{width}} {'val acc':>8} {test_head:>17} {'BOPs vs FP32':>12} {'vs INT8':>8} "
              f"{metric + '/limit':>16} {'size KiB':>9} {'energy uJ':>9} {'latency ms':>10}  per-layer (sparsity, bits)")
    each = "; each seed's test split evaluated once" if seeds > 1 else "; test split evaluated once"
    lines = [f"final policies (fine-tuned {prep.cfg.final_steps} steps{each}; "
             f"float base model test accuracy {prep.base_test_accuracy:.4f})", header, "-" * len(header)]
    for r in rows:
        if r["repeats"] == 0:
            lines.append(f"{r['label']:<{width}} failed: {r.get('error')}")
            continue
        test = f"{r['test_accuracy']:.4f}" + (f" ± {r['test_std']:.4f}" if r["repeats"] > 1 else "")
        lines.append(
            f"{r['label']:<{width}} {r['accuracy']:>8.4f} {test:>{len(test_head)}} {r['bops_vs_fp32']:>11.1f}x "
            f"{r['bops_vs_int8']:>7.1f}x {r['cost'] / r['limit']:>16.3f} {r['size_bits'] / 8192:>9.2f} "
            f"{r['energy_pj'] / 1e6:>9.3f} {r['latency_s'] * 1e3:>10.4f}  {describe_policy(r['policy'], prep.space.fixed_pruning)}"
        )
    if not versus_uniform:
        return "\n".join(lines)
    ok = [r for r in rows if r["repeats"] > 0]
    best_front = max((r for r in ok if r["label"].startswith("pareto")), key=validation_rank, default=None)
    uniform = best_uniform_row(ok)
    if best_front is not None and uniform is not None:
        gap = best_front["test_accuracy"] - uniform["test_accuracy"]
        same = " (the same policy: the best uniform policy is on the front)" if best_front is uniform else ""
        spread = ""
        if best_front["repeats"] > 1 and uniform["repeats"] > 1 and best_front is not uniform:
            sum_std = (best_front["test_std"] + uniform["test_std"]) * 100
            spread = (f" ({'beyond' if abs(gap) * 100 > sum_std else 'within'} the seed spread: std "
                      f"{best_front['test_std'] * 100:.2f} + {uniform['test_std'] * 100:.2f} points)")
        mean = " mean" if seeds > 1 else ""
        lines.append(f"best evolved policy vs best uniform policy within the same budget, each chosen by{mean} "
                     f"validation accuracy: {gap * 100:+.2f} points of{mean} test accuracy{same}{spread}")
    elif best_front is not None:
        lines.append("no uniform policy of the search space fits the budget")
    return "\n".join(lines)
