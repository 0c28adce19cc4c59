"""`evo compare`'s plots: matplotlib Figures on the Agg canvas (no pyplot state), one panel per
budget: Pareto fronts of the final policies, accuracy against the budget, hypervolume against
trials spent, compute spent per method."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evo.compare.tables import METHOD_ORDER, SEARCH_METHODS, budget_key, top_fidelity
from evo.runs.folder import name_recipes
from evo.runs.summary import is_reference_only


def _figure(panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * max(panels, 1), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, max(panels, 1), squeeze=False)[0])


_EXTRA_COLORS = ("C5", "C6", "C8", "C9", "C7")
_extra: dict[str, str] = {}  # a label outside METHOD_ORDER ('admm (8+4 epochs)', 'evo (final_top 1)') -> its colour


def _color(method: str) -> str:
    """The same colour for one method label in every figure of a report; a label that is not a
    plain method name takes the next of the spare colours, in the order labels are first drawn."""
    if method in METHOD_ORDER:
        return f"C{METHOD_ORDER.index(method)}"
    return _extra.setdefault(method, _EXTRA_COLORS[len(_extra) % len(_EXTRA_COLORS)])


def final_points(runs) -> pd.DataFrame:
    """Every final policy within its budget (all seeds), for the Pareto plot."""
    name_recipes(runs)
    frames = []
    for run in runs:
        t = run.trials
        t = t[(t.phase == "final") & (t.status == "ok") & (t.violation.fillna(1) <= 0)
              & ~t.label.map(is_reference_only)]
        keys = [budget_key(budget, limit) for budget, limit in zip(t.budget, t["limit"])]
        frames.append(t.assign(method=run.label, budget_key=keys))
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
    from evo.core.indicators import hypervolume

    name_recipes(runs)
    curves = []
    for run in runs:
        if run.method not in SEARCH_METHODS:
            continue
        search = run.trials[run.trials.phase == "search"].sort_values("finished_at")
        for budget, rows in search.groupby("budget"):
            limit = float(rows["limit"].dropna().iloc[0])
            points, values = [], []
            ranked = set(top_fidelity(rows).index)  # a lower rung's trial spends compute, adds no point
            for index, accuracy, cost, ok in zip(rows.index, rows.accuracy, rows.cost, rows.status == "ok"):
                if ok and cost <= limit and index in ranked:
                    points.append((accuracy, cost))
                    values.append(hypervolume(points, limit))
                else:  # a failed or over-budget trial spends a trial and adds nothing
                    values.append(values[-1] if values else 0.0)
            curves.append({"method": run.label, "budget": budget, "run": str(run.path),
                           "budget_key": budget_key(budget, limit), "hypervolume": np.array(values)})
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
