"""`evo compare`'s report: report.md (the tables and sentences of :mod:`evo.compare.tables`) and the
PNG plots of :mod:`evo.compare.plots`, written into one folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evo.compare.plots import (accuracy_vs_budget_figure, compute_figure, final_points, hypervolume_curves,
                               hypervolume_figure, pareto_figure)
from evo.compare.tables import (budget_table, check_comparable, comparison_sentences, hypervolume_sentences,
                                per_seed_results, summarize)


def format_report(runs, summary: pd.DataFrame) -> str:
    first = runs[0].config
    lines = [f"# Comparison: {first.get('model')} on {first.get('dataset')}, target {first.get('target')}", "",
             "| run | method | seeds | budget(s) | settings not at their default |", "|---|---|---|---|---|"]
    for run in runs:
        seeds = sorted(set(run.trials.seed.dropna().astype(int)))
        changes = run.recipe_changes
        changes = "– (in the method's name)" if changes is None else changes or "none"
        lines.append(f"| {run.path} | {run.label} | {', '.join(map(str, seeds))} | "
                     f"{', '.join(sorted(set(run.trials.budget.dropna())))} | {changes} |")
    for key, rows in summary.groupby("budget_key", sort=False):
        lines += ["", f"## Budget {rows.budget.iloc[0]} ({rows.metric.iloc[0]} ≤ {rows.limit.iloc[0]:.6g})", ""]
        lines += budget_table(rows) + [""] + [f"- {s}" for s in comparison_sentences(rows) + hypervolume_sentences(rows)]
    lines += ["", "## How to read this", "",
              "- Per run, budget and seed: the final policy within the budget with the best validation accuracy; "
              "its test accuracy (the test split is evaluated once per final policy and never selects).",
              "- std: sample standard deviation over seeds (n − 1). A gap counts as beyond the seed-to-seed spread "
              "when it exceeds the sum of the two methods' std.",
              "- screened-front hypervolume: the area the screened trials' feasible (validation accuracy, cost) "
              "points dominate up to (accuracy 0, cost = budget), as `evo search` logs it; the whole trade-off "
              "curve a method found, where test accuracy judges its one best policy. ADMM screens nothing (–).",
              "- size: comparable = Σ nnz·b_w (Yang et al.'s count); honest = plus sparse indices, per-channel "
              "scales, biases and norms at 32 bits.",
              "- trials and compute: every trial of the run (screening and final; ADMM: one trial per budget and "
              "seed); fine-tune samples = Σ steps × batch size; compute s = Σ compute_seconds. evo's in-run "
              "uniform reference is not counted. A method with more than 10 % more samples or seconds per seed "
              "than another is flagged under its table.", "",
              "![Pareto fronts](pareto.png)", "![Accuracy vs budget](accuracy_vs_budget.png)",
              "![Hypervolume vs trials](hypervolume.png)", "![Compute](compute.png)", ""]
    return "\n".join(lines)


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
