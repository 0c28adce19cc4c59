"""`evo compare`'s report: one Markdown table per budget and four PNG plots (evo.compare.plots).

Per run, budget and seed, the reported policy is the final (fine-tuned, test-evaluated) policy
within the budget with the best *validation* accuracy: the test split never chooses. Seeds of
one method and budget give mean and sample standard deviation (n - 1). evo's run folders also
hold an in-run uniform reference (phase "uniform" and the final rows labelled "uniform reference",
or "best uniform" before final_uniform: ``evo.runs.summary.is_reference_only``); it is left out
of evo's rows, since `evo baseline uniform` measures that baseline on its own.
"""

from __future__ import annotations

import math

import pandas as pd

from evo.runs.folder import name_recipes
from evo.runs.summary import best_final, is_reference_only
from hardware.budget import parse_budget

SEARCH_METHODS = ("evo", "random", "optuna")  # methods with a hypervolume-vs-trials curve
METHOD_ORDER = ("evo", "uniform", "random", "optuna", "admm")
COMPARED_SETTINGS = ("model", "dataset", "target")
ADMM_EXTENSION = "BOPs budget: an extension of Yang et al., who constrain size"
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


def budget_key(budget: str, limit: float) -> str:
    """Budgets group by metric and absolute limit: 'bops=1/256' and 'bops=0.00390625xfp32' are one."""
    return f"{parse_budget(budget).metric}<={limit:.9g}"


def _mode(values: pd.Series):
    values = values.dropna()
    return int(values.mode().iloc[0]) if len(values) else None


def top_fidelity(search: pd.DataFrame) -> pd.DataFrame:
    """The screened rows policies are ranked on: all of them, or with successive-halving rungs
    (``rung`` set) only the top rung's, the full per-trial fine-tune."""
    if "rung" not in search or search.rung.isna().all():
        return search
    return search[search.rung == search.rung.max()]


def _rung_text(search: pd.DataFrame) -> str | None:
    """'9→27→80' when the screen ran successive-halving rungs, else None."""
    steps = sorted({int(s) for s in search.steps.dropna()})
    return "→".join(map(str, steps)) if "rung" in search and search.rung.notna().any() and len(steps) > 1 else None


def _best_final(group: pd.DataFrame) -> dict:
    """The run's final policy as ``evo.runs.summary.best_final`` chooses it (best mean validation
    accuracy within the budget, the cheaper on a tie): its test accuracy and costs."""
    finals = group[(group.phase == "final") & (group.status == "ok") & (group.violation.fillna(1) <= 0)]
    best = best_final(finals.to_dict("records"))
    if best is None:
        return {name: math.nan for name in ("test_accuracy", "cost", *COST_COLUMNS)}
    pick = pd.Series(best)
    return {"test_accuracy": pick.test_accuracy, "cost": pick.cost, "bops_vs_fp32": pick.bops_vs_fp32,
            "bops_vs_int8": pick.bops_vs_int8, "size_kib": pick.size_bits / 8192,
            "honest_kib": pick.size_bits_honest / 8192, "energy_uj": pick.energy_pj / 1e6,
            "latency_us": pick.latency_s * 1e6}


def _screened_hypervolume(search: pd.DataFrame, limit: pd.Series) -> float:
    """Hypervolume of the screened trials' (``search``: a run's search-phase rows) feasible
    (validation accuracy, cost) points at the top rung, the area `evo search` maximises; NaN for a
    method that screens nothing (ADMM)."""
    from evo.core.indicators import hypervolume

    search = top_fidelity(search)
    if search.empty or not len(limit):
        return math.nan
    ok = search[search.status == "ok"]
    return hypervolume(zip(ok.accuracy, ok.cost), float(limit.iloc[0]))


def per_seed_results(runs) -> pd.DataFrame:
    """One row per run, budget and seed: the chosen final policy, its costs, the trials and compute
    spent. Runs of one method with different recipes are methods of their own (``name_recipes``)."""
    name_recipes(runs)
    rows = []
    for run in runs:
        trials = run.trials[(run.trials.phase != "uniform") & ~run.trials.label.map(is_reference_only)]
        for (budget, seed), group in trials[trials.phase != "epoch"].groupby(["budget", "seed"]):
            limit, search = group["limit"].dropna(), group[group.phase == "search"]
            rows.append({
                "method": run.label, "run": str(run.path), "budget": budget, "seed": int(seed),
                "metric": parse_budget(budget).metric, "limit": float(limit.iloc[0]) if len(limit) else math.nan,
                **_best_final(group), "hypervolume": _screened_hypervolume(search, limit),
                "trials": len(group), "compute_seconds": group.compute_seconds.sum(min_count=1),
                "samples": group.steps.sum(min_count=1) * run.batch_size if run.batch_size else math.nan,
                "screen_steps": _mode(top_fidelity(search).steps), "rung_steps": _rung_text(search),
                "final_steps": _mode(group[group.phase == "final"].steps),
            })
    if not rows:
        raise ValueError(f"runs {[str(run.path) for run in runs]} hold no finished trial; nothing to compare")
    table = pd.DataFrame(rows)
    table["budget_key"] = [budget_key(b, x) for b, x in zip(table.budget, table.limit)]
    repeated = table[table.duplicated(["method", "budget_key", "seed"], keep=False)]
    if len(repeated):
        raise ValueError(f"runs {sorted(set(repeated.run))} repeat method {repeated.method.iloc[0]!r}, budget "
                         f"{repeated.budget.iloc[0]!r} and seed {repeated.seed.iloc[0]}; pass each seed once")
    return table


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per budget and method: n seeds, test accuracy mean and std, mean costs and compute."""
    out = []
    for (key, method), group in per_seed.groupby(["budget_key", "method"], sort=False):
        accuracy, volume = group.test_accuracy.dropna(), group.hypervolume.dropna()
        steps = sorted({(s if pd.notna(s) else None, f if pd.notna(f) else None)
                        for s, f in zip(group.screen_steps, group.final_steps)}, key=str)
        rungs = sorted(set(group.rung_steps.dropna()))
        fidelity = " or ".join(_steps(s) for s in steps)
        out.append({"budget_key": key, "budget": group.budget.iloc[0], "metric": group.metric.iloc[0],
                    "limit": group.limit.iloc[0], "method": method, "n": len(accuracy),
                    "test_mean": accuracy.mean() if len(accuracy) else math.nan,
                    "test_std": accuracy.std(ddof=1) if len(accuracy) > 1 else math.nan,
                    "hv_n": len(volume), "hv_mean": volume.mean() if len(volume) else math.nan,
                    "hv_std": volume.std(ddof=1) if len(volume) > 1 else math.nan,
                    **{c: group[c].mean() for c in COST_COLUMNS},
                    "trials": group.trials.mean(), "compute_seconds": group.compute_seconds.mean(),
                    "samples": group.samples.mean(),
                    "compute_total": group.compute_seconds.sum(), "fidelity": fidelity,
                    "steps": fidelity + (f" (rungs {', '.join(rungs)})" if rungs else "")})
    table = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    # a recipe's label ('evo (final_top 1)', 'admm (8+4 epochs)') sorts after its method's plain name
    table["order"] = [order.get(m.split(" (")[0], len(order)) for m in table.method]
    return table.sort_values(["metric", "limit", "order", "method"]).drop(columns="order").reset_index(drop=True)


def _steps(pair) -> str:
    return " / ".join("–" if x is None else str(int(x)) for x in pair)


def comparison_sentences(budget_rows: pd.DataFrame) -> list[str]:
    """Who is ahead at one budget in test accuracy, by how much, and whether that beats the
    seed-to-seed spread."""
    budget = budget_rows.budget.iloc[0]
    ranked = budget_rows.dropna(subset=["test_mean"])
    if len(ranked) < 2:
        return [f"At {budget} only {', '.join(budget_rows.method)} has a final policy; nothing to compare."]
    return _gap_sentences(ranked, "test", "n", budget, "points of test accuracy",
                          lambda x: f"{x * 100:.2f}%", scale=100)


def hypervolume_sentences(budget_rows: pd.DataFrame) -> list[str]:
    """The same for the hypervolume of the screened front (validation), among methods that screen."""
    ranked = budget_rows.dropna(subset=["hv_mean"])
    if len(ranked) < 2:
        return []
    return _gap_sentences(ranked, "hv", "hv_n", budget_rows.budget.iloc[0],
                          "in hypervolume of the screened front (validation)", lambda x: f"{x:.4f}", scale=1)


def _gap_sentences(rows: pd.DataFrame, column: str, count: str, budget: str, what: str, show, *,
                   scale: float) -> list[str]:
    ranked = rows.sort_values(f"{column}_mean", ascending=False)
    leader, sentences = ranked.iloc[0], []
    digits = 2 if scale == 100 else 4
    for _, other in ranked.iloc[1:].iterrows():
        mean_l, mean_o = leader[f"{column}_mean"], other[f"{column}_mean"]
        std_l, std_o = leader[f"{column}_std"], other[f"{column}_std"]
        gap = (mean_l - mean_o) * scale
        if leader[count] < 2 or other[count] < 2:
            spread = "the seed-to-seed spread is unknown (a method has one seed)"
        else:
            verdict = "exceeds the seed-to-seed spread" if gap > (std_l + std_o) * scale else "is within seed spread"
            unit = " points" if scale == 100 else ""
            spread = f"the gap {verdict} (std {std_l * scale:.{digits}f} + {std_o * scale:.{digits}f}{unit})"
        lead = (f"{leader.method} and {other.method} tie" if gap == 0 else
                f"{leader.method} is ahead of {other.method} by {gap:.{digits}f} {what}")
        sentences.append(f"At {budget}, {lead} ({show(mean_l)} vs {show(mean_o)}); {spread}.")
    return sentences


def _method_cell(row) -> str:
    """The method's name; ADMM's (a RunFolder.label: 'admm' or 'admm (8+4 epochs)') on a BOPs
    budget says that the budget extends Yang et al."""
    if not row.method.startswith("admm") or row.metric == "size_bits":
        return row.method
    return f"{row.method[:-1]}; {ADMM_EXTENSION})" if row.method.endswith(")") else f"{row.method} ({ADMM_EXTENSION})"


def _accuracy_cell(row) -> str:
    if not row.n:
        return "no final policy"
    mean = f"{row.test_mean * 100:.2f}"
    return f"{mean} ± {row.test_std * 100:.2f}" if row.n > 1 else f"{mean} (one seed)"


def _hypervolume_cell(row) -> str:
    if not row.hv_n:
        return "–"
    return f"{row.hv_mean:.4f} ± {row.hv_std:.4f}" if row.hv_n > 1 else f"{row.hv_mean:.4f}"


COMPUTE_TOLERANCE = 0.10  # a method with more than 10 % more compute than another is flagged
COMPUTE_MEASURES = (("samples", "fine-tune samples", "{:,.0f}"), ("compute_seconds", "trial seconds", "{:,.1f}"))


def compute_sentences(budget_rows: pd.DataFrame) -> list[str]:
    """Per measure of compute (fine-tune samples = steps x batch, screen + final; trial seconds),
    each method that got more than ``COMPUTE_TOLERANCE`` more per seed than the least-served one."""
    budget, sentences = budget_rows.budget.iloc[0], []
    for column, what, show in COMPUTE_MEASURES:
        counted = budget_rows.dropna(subset=[column])
        counted = counted[counted[column] > 0]
        if len(counted) < 2:
            continue
        least = counted.loc[counted[column].idxmin()]
        for _, row in counted.iterrows():
            excess = row[column] / least[column] - 1
            if excess > COMPUTE_TOLERANCE:
                sentences.append(f"**Unequal compute** at {budget}: {row.method} got {excess:.0%} more {what} "
                                 f"per seed than {least.method} ({show.format(row[column])} vs "
                                 f"{show.format(least[column])}).")
    return sentences


def compute_lines(summary: pd.DataFrame) -> list[str]:
    """What `evo compare` prints: per budget, each method's compute per seed, then the flags."""
    lines = []
    for _, rows in summary.groupby("budget_key", sort=False):
        spent = ", ".join(f"{r.method} {r.samples:,.0f} samples / {r.compute_seconds:,.1f} s" for _, r in rows.iterrows())
        lines.append(f"compute per seed at {rows.budget.iloc[0]} (fine-tune samples / trial seconds): {spent}")
        lines += [sentence.replace("**", "") for sentence in compute_sentences(rows)]
    return lines


def budget_table(budget_rows: pd.DataFrame) -> list[str]:
    lines = ["| method | seeds (n) | test accuracy % (mean ± std) | screened-front hypervolume (val.) | "
             "BOPs vs FP32 | BOPs vs INT8 | size KiB (comparable / honest) | energy µJ | latency µs | "
             "trials / seed | fine-tune samples / seed | compute s / seed | fine-tune steps (screen / final) |",
             "|" + "---|" * 13]
    for _, r in budget_rows.iterrows():
        lines.append(f"| {_method_cell(r)} | {r.n} | {_accuracy_cell(r)} | {_hypervolume_cell(r)} | "
                     f"{r.bops_vs_fp32:.1f}× | "
                     f"{r.bops_vs_int8:.1f}× | {r.size_kib:.3g} / {r.honest_kib:.3g} | {r.energy_uj:.3g} | "
                     f"{r.latency_us:.3g} | {r.trials:.0f} | {'–' if math.isnan(r.samples) else f'{r.samples:,.0f}'} | "
                     f"{r.compute_seconds:.1f} | {r.steps} |")
    if budget_rows.fidelity.nunique() > 1:  # successive-halving rungs below the top are compute, counted above
        detail = ", ".join(f"{m} {s}" for m, s in zip(budget_rows.method, budget_rows.fidelity))
        lines.append(f"\n**Unequal fine-tune budgets between methods** (steps per trial, screen / final): {detail}.")
    flags = compute_sentences(budget_rows)
    if flags:
        lines += [""] + flags
    return lines
