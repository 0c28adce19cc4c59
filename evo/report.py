"""`evo compare`'s report: one Markdown table per budget and four PNG plots (evo.report_plots).

Per run, budget and seed, the reported policy is the final (fine-tuned, test-evaluated) policy
within the budget with the best *validation* accuracy: the test split never chooses. Seeds of
one method and budget give mean and sample standard deviation (n - 1). evo's run folders also
hold an in-run uniform reference (phase "uniform" and the "best uniform" final row); it is left
out of evo's rows, since `evo baseline uniform` measures that baseline on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from hardware.budget import parse_budget

SEARCH_METHODS = ("evo", "random", "optuna")  # methods with a hypervolume-vs-trials curve
METHOD_ORDER = ("evo", "uniform", "random", "optuna", "admm")
COMPARED_SETTINGS = ("model", "dataset", "target")
ADMM_EXTENSION = " (BOPs budget: an extension of Yang et al., who constrain size)"
COST_COLUMNS = ("bops_vs_fp32", "bops_vs_int8", "size_kib", "honest_kib", "energy_uj", "latency_us")


def check_comparable(runs) -> None:
    """ValueError naming the runs and values when model, dataset or target differ."""
    if not runs:
        raise ValueError("give at least one run folder")
    for key in COMPARED_SETTINGS:
        values = {str(run.path): run.config.get(key) for run in runs}
        if len(set(values.values())) > 1:
            detail = ", ".join(f"{path} has {value!r}" for path, value in values.items())
            raise ValueError(f"runs differ in {key}: {detail}; compare runs of one model, dataset and target "
                             "(budgets may differ)")


def _budget_key(budget: str, limit: float) -> str:
    """Budgets group by metric and absolute limit: 'bops=1/256' and 'bops=0.00390625xfp32' are one."""
    return f"{parse_budget(budget).metric}<={limit:.9g}"


def _mode(values: pd.Series):
    values = values.dropna()
    return int(values.mode().iloc[0]) if len(values) else None


def _best_final(group: pd.DataFrame) -> dict:
    """The final policy within the budget with the best validation accuracy (the cheaper on a tie)."""
    finals = group[(group.phase == "final") & (group.status == "ok") & (group.violation.fillna(1) <= 0)]
    if finals.empty:
        return {name: math.nan for name in ("test_accuracy", "cost", *COST_COLUMNS)}
    pick = finals.sort_values(["accuracy", "cost"], ascending=[False, True]).iloc[0]
    return {"test_accuracy": pick.test_accuracy, "cost": pick.cost, "bops_vs_fp32": pick.bops_vs_fp32,
            "bops_vs_int8": pick.bops_vs_int8, "size_kib": pick.size_bits / 8192,
            "honest_kib": pick.size_bits_honest / 8192, "energy_uj": pick.energy_pj / 1e6,
            "latency_us": pick.latency_s * 1e6}


def per_seed_results(runs) -> pd.DataFrame:
    """One row per run, budget and seed: the chosen final policy, its costs, the trials and compute spent."""
    rows = []
    for run in runs:
        trials = run.trials[(run.trials.phase != "uniform") & (run.trials.label.fillna("") != "best uniform")]
        for (budget, seed), group in trials[trials.phase != "epoch"].groupby(["budget", "seed"]):
            limit = group["limit"].dropna()
            rows.append({
                "method": run.method, "run": str(run.path), "budget": budget, "seed": int(seed),
                "metric": parse_budget(budget).metric, "limit": float(limit.iloc[0]) if len(limit) else math.nan,
                **_best_final(group), "trials": len(group), "compute_seconds": group.compute_seconds.sum(min_count=1),
                "screen_steps": _mode(group[group.phase == "search"].steps),
                "final_steps": _mode(group[group.phase == "final"].steps),
            })
    if not rows:
        raise ValueError(f"runs {[str(run.path) for run in runs]} hold no finished trial; nothing to compare")
    table = pd.DataFrame(rows)
    table["budget_key"] = [_budget_key(b, x) for b, x in zip(table.budget, table.limit)]
    repeated = table[table.duplicated(["method", "budget_key", "seed"], keep=False)]
    if len(repeated):
        raise ValueError(f"runs {sorted(set(repeated.run))} repeat method {repeated.method.iloc[0]!r}, budget "
                         f"{repeated.budget.iloc[0]!r} and seed {repeated.seed.iloc[0]}; pass each seed once")
    return table


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per budget and method: n seeds, test accuracy mean and std, mean costs and compute."""
    out = []
    for (key, method), group in per_seed.groupby(["budget_key", "method"], sort=False):
        accuracy = group.test_accuracy.dropna()
        steps = sorted({(s if pd.notna(s) else None, f if pd.notna(f) else None)
                        for s, f in zip(group.screen_steps, group.final_steps)}, key=str)
        out.append({"budget_key": key, "budget": group.budget.iloc[0], "metric": group.metric.iloc[0],
                    "limit": group.limit.iloc[0], "method": method, "n": len(accuracy),
                    "test_mean": accuracy.mean() if len(accuracy) else math.nan,
                    "test_std": accuracy.std(ddof=1) if len(accuracy) > 1 else math.nan,
                    **{c: group[c].mean() for c in COST_COLUMNS},
                    "trials": group.trials.mean(), "compute_seconds": group.compute_seconds.mean(),
                    "compute_total": group.compute_seconds.sum(), "steps": " or ".join(_steps(s) for s in steps)})
    table = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    table["order"] = [order.get(m, len(order)) for m in table.method]
    return table.sort_values(["metric", "limit", "order"]).drop(columns="order").reset_index(drop=True)


def _steps(pair) -> str:
    return " / ".join("–" if x is None else str(int(x)) for x in pair)


def comparison_sentences(budget_rows: pd.DataFrame) -> list[str]:
    """Who is ahead at one budget, by how much, and whether that beats the seed-to-seed spread."""
    ranked = budget_rows.dropna(subset=["test_mean"]).sort_values("test_mean", ascending=False)
    budget = budget_rows.budget.iloc[0]
    if len(ranked) < 2:
        return [f"At {budget} only {', '.join(budget_rows.method)} has a final policy; nothing to compare."]
    leader, sentences = ranked.iloc[0], []
    for _, other in ranked.iloc[1:].iterrows():
        gap = (leader.test_mean - other.test_mean) * 100
        if leader.n < 2 or other.n < 2:
            spread = "the seed-to-seed spread is unknown (a method has one seed)"
        else:
            std_sum = (leader.test_std + other.test_std) * 100
            verdict = "exceeds the seed-to-seed spread" if gap > std_sum else "is within seed spread"
            spread = f"the gap {verdict} (std {leader.test_std * 100:.2f} + {other.test_std * 100:.2f} points)"
        lead = (f"{leader.method} and {other.method} tie" if gap == 0 else
                f"{leader.method} is ahead of {other.method} by {gap:.2f} points of test accuracy")
        sentences.append(f"At {budget}, {lead} ({leader.test_mean * 100:.2f}% vs {other.test_mean * 100:.2f}%); "
                         f"{spread}.")
    return sentences


def _method_cell(row) -> str:
    return row.method + (ADMM_EXTENSION if row.method == "admm" and row.metric != "size_bits" else "")


def _accuracy_cell(row) -> str:
    if not row.n:
        return "no final policy"
    mean = f"{row.test_mean * 100:.2f}"
    return f"{mean} ± {row.test_std * 100:.2f}" if row.n > 1 else f"{mean} (one seed)"


def budget_table(budget_rows: pd.DataFrame) -> list[str]:
    lines = ["| method | seeds (n) | test accuracy % (mean ± std) | BOPs vs FP32 | BOPs vs INT8 | size KiB "
             "(comparable / honest) | energy µJ | latency µs | trials / seed | compute s / seed | "
             "fine-tune steps (screen / final) |", "|" + "---|" * 11]
    for _, r in budget_rows.iterrows():
        lines.append(f"| {_method_cell(r)} | {r.n} | {_accuracy_cell(r)} | {r.bops_vs_fp32:.1f}× | "
                     f"{r.bops_vs_int8:.1f}× | {r.size_kib:.3g} / {r.honest_kib:.3g} | {r.energy_uj:.3g} | "
                     f"{r.latency_us:.3g} | {r.trials:.0f} | {r.compute_seconds:.1f} | {r.steps} |")
    if budget_rows.steps.nunique() > 1:
        detail = ", ".join(f"{m} {s}" for m, s in zip(budget_rows.method, budget_rows.steps))
        lines.append(f"\n**Unequal fine-tune budgets between methods** (steps per trial, screen / final): {detail}.")
    return lines


def format_report(runs, summary: pd.DataFrame) -> str:
    first = runs[0].config
    lines = [f"# Comparison: {first.get('model')} on {first.get('dataset')}, target {first.get('target')}", "",
             "| run | method | seeds | budget(s) |", "|---|---|---|---|"]
    for run in runs:
        seeds = sorted(set(run.trials.seed.dropna().astype(int)))
        lines.append(f"| {run.path} | {run.method} | {', '.join(map(str, seeds))} | "
                     f"{', '.join(sorted(set(run.trials.budget.dropna())))} |")
    for key, rows in summary.groupby("budget_key", sort=False):
        lines += ["", f"## Budget {rows.budget.iloc[0]} ({rows.metric.iloc[0]} ≤ {rows.limit.iloc[0]:.6g})", ""]
        lines += budget_table(rows) + [""] + [f"- {s}" for s in comparison_sentences(rows)]
    lines += ["", "## How to read this", "",
              "- Per run, budget and seed: the final policy within the budget with the best validation accuracy; "
              "its test accuracy (the test split is evaluated once per final policy and never selects).",
              "- std: sample standard deviation over seeds (n − 1). A gap counts as beyond the seed-to-seed spread "
              "when it exceeds the sum of the two methods' std.",
              "- size: comparable = Σ nnz·b_w (Yang et al.'s count); honest = plus sparse indices, per-channel "
              "scales, biases and norms at 32 bits.",
              "- trials and compute: every trial of the run (screening and final; ADMM: one trial per budget and "
              "seed), compute = Σ compute_seconds. evo's in-run uniform reference is not counted.", "",
              "![Pareto fronts](pareto.png)", "![Accuracy vs budget](accuracy_vs_budget.png)",
              "![Hypervolume vs trials](hypervolume.png)", "![Compute](compute.png)", ""]
    return "\n".join(lines)


def write_report(runs, out: str | Path) -> list[Path]:
    """Check the runs, write report.md and the four plots into ``out``; return the paths."""
    from evo.report_plots import (accuracy_vs_budget_figure, compute_figure, final_points, hypervolume_curves,
                                  hypervolume_figure, pareto_figure)

    check_comparable(runs)
    summary = summarize(per_seed_results(runs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"pareto.png": pareto_figure(final_points(runs)),
               "accuracy_vs_budget.png": accuracy_vs_budget_figure(summary),
               "hypervolume.png": hypervolume_figure(hypervolume_curves(runs)),
               "compute.png": compute_figure(summary)}
    written = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        written.append(out / name)
    (out / "report.md").write_text(format_report(runs, summary))
    return [out / "report.md"] + written
