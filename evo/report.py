"""`evo compare`'s report: one Markdown table per budget and four PNG plots.

Per run, budget and seed, the reported policy is the final (fine-tuned, test-evaluated) policy
within the budget with the best *validation* accuracy: the test split never chooses. Seeds of
one method and budget give mean and sample standard deviation (n - 1). evo's run folders also
hold an in-run uniform reference (phase "uniform" and the "best uniform" final row); it is left
out of evo's rows, since `evo baseline uniform` measures that baseline on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
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


# -- plots (matplotlib Figures on the Agg canvas; no pyplot state) ------------------------------
def _figure(panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * max(panels, 1), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, max(panels, 1), squeeze=False)[0])


def _color(method: str) -> str:
    return f"C{METHOD_ORDER.index(method)}" if method in METHOD_ORDER else "C7"


def final_points(runs) -> pd.DataFrame:
    """Every final policy within its budget (all seeds), for the Pareto plot."""
    frames = []
    for run in runs:
        t = run.trials
        t = t[(t.phase == "final") & (t.status == "ok") & (t.violation.fillna(1) <= 0)
              & (t.label.fillna("") != "best uniform")]
        keys = [_budget_key(budget, limit) for budget, limit in zip(t.budget, t["limit"])]
        frames.append(t.assign(method=run.method, budget_key=keys))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pareto_figure(points: pd.DataFrame):
    keys = list(dict.fromkeys(points.budget_key))
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        panel = points[points.budget_key == key]
        for method, rows in sorted(panel.groupby("method"), key=lambda mr: _color(mr[0])):
            ax.scatter(rows.cost / rows["limit"], rows.test_accuracy * 100, label=method, color=_color(method),
                       alpha=0.8, edgecolors="none")
        ax.set(title=f"budget {panel.budget.iloc[0]}", xlabel="budgeted cost / limit", ylabel="test accuracy %")
        ax.legend()
    return fig


def accuracy_vs_budget_figure(summary: pd.DataFrame):
    metrics = list(dict.fromkeys(summary.metric))
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        panel = summary[(summary.metric == metric) & (summary.n > 0)]
        for method, rows in panel.groupby("method", sort=False):
            ax.errorbar(rows["limit"], rows.test_mean * 100, yerr=rows.test_std.fillna(0) * 100, label=method,
                        color=_color(method), marker="o", capsize=3)
        if panel["limit"].nunique() > 1:
            ax.set_xscale("log")
        ax.set(title=f"{metric} budgets", xlabel=f"{metric} limit", ylabel="test accuracy % (mean ± std)")
        ax.legend()
    return fig


def hypervolume_curves(runs) -> list[dict]:
    """Hypervolume of the feasible (validation accuracy, cost) points after each search trial, in the
    order trials finished (the archive hypervolume `evo search` logs at each generation's end)."""
    from evo.selection import hypervolume

    curves = []
    for run in runs:
        if run.method not in SEARCH_METHODS:
            continue
        search = run.trials[run.trials.phase == "search"].sort_values("finished_at")
        for budget, rows in search.groupby("budget"):
            limit = float(rows["limit"].dropna().iloc[0])
            points, values = [], []
            for accuracy, cost, ok in zip(rows.accuracy, rows.cost, rows.status == "ok"):
                if ok and cost <= limit:
                    points.append((accuracy, cost))
                    values.append(hypervolume(points, limit))
                else:  # a failed or over-budget trial spends a trial and adds nothing
                    values.append(values[-1] if values else 0.0)
            curves.append({"method": run.method, "budget": budget, "run": str(run.path),
                           "budget_key": _budget_key(budget, limit), "hypervolume": np.array(values)})
    return curves


def hypervolume_figure(curves: list[dict]):
    keys = list(dict.fromkeys(c["budget_key"] for c in curves))
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        panel = [c for c in curves if c["budget_key"] == key]
        for method in dict.fromkeys(c["method"] for c in panel):
            runs = [c["hypervolume"] for c in panel if c["method"] == method]
            length = min(len(r) for r in runs)  # seeds are averaged over the trials all of them spent
            stack = np.stack([r[:length] for r in runs])
            trials = np.arange(1, length + 1)
            ax.plot(trials, stack.mean(axis=0), label=method, color=_color(method))
            if len(runs) > 1:
                ax.fill_between(trials, stack.min(axis=0), stack.max(axis=0), color=_color(method), alpha=0.2)
        ax.set(title=f"budget {panel[0]['budget']}", xlabel="trials spent", ylabel="hypervolume (validation)")
        ax.legend()
    if not keys:
        axes[0].text(0.5, 0.5, "no search runs (evo, random, optuna)", ha="center", va="center")
    return fig


def compute_figure(summary: pd.DataFrame):
    fig, (ax,) = _figure(1)
    budgets = list(dict.fromkeys(summary.budget_key))
    methods = list(dict.fromkeys(summary.method))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        rows = summary[summary.method == method].set_index("budget_key").reindex(budgets)
        ax.bar(np.arange(len(budgets)) + i * width, rows.compute_seconds.fillna(0), width, label=method,
               color=_color(method))
    labels = [summary[summary.budget_key == key].budget.iloc[0] for key in budgets]
    ax.set_xticks(np.arange(len(budgets)) + 0.4 - width / 2, labels)
    ax.set(ylabel="compute seconds per seed (all trials incl. final)", title="compute spent")
    ax.legend()
    return fig


def write_report(runs, out: str | Path) -> list[Path]:
    """Check the runs, write report.md and the four plots into ``out``; return the paths."""
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
