"""`evo compare`: statistics and tables on hand-made run folders (no Ray), then real tiny runs of
`evo search`, `evo baseline random` and `evo baseline optuna` through the command line, compared."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
from cli_runner import run_evo
import pyarrow as pa
import pytest
import yaml

from evo.compare import format_report, write_report
from evo.compare.tables import (ADMM_EXTENSION, budget_table, check_comparable, comparison_sentences,
                                hypervolume_sentences, per_seed_results, summarize)
from evo.compare.plots import (accuracy_vs_budget_figure, compute_figure, final_points, hypervolume_curves,
                              hypervolume_figure, pareto_figure)
from evo.runs.schema import TRIAL_SCHEMA, conform
from evo.runs.parquet import PartWriter
from evo.runs.folder import RunFolder, read_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIMIT = 1000.0
CONFIG = {"model": "mlp", "dataset": "digits", "target": "bitserial"}


def trial(**values) -> dict:
    row = {"phase": "search", "status": "ok", "budget": "bops=1/256", "seed": 0, "limit": LIMIT, "violation": 0.0,
           "cost": 500.0, "accuracy": 0.5, "steps": 20, "compute_seconds": 1.0, "bops_vs_fp32": 100.0,
           "bops_vs_int8": 10.0, "size_bits": 8192.0, "size_bits_honest": 16384.0, "energy_pj": 2e6,
           "latency_s": 3e-6, "finished_at": 0.0}
    row.update(values)
    if row["phase"] == "final":
        row.setdefault("test_accuracy", 0.0)
        row["steps"] = values.get("steps", 200)
    return row


def run_folder(method: str, rows: list[dict], path: str = "", **config) -> RunFolder:
    table = pa.Table.from_pylist([conform(r, TRIAL_SCHEMA) for r in rows], schema=TRIAL_SCHEMA).to_pandas()
    return RunFolder(Path(f"/runs/{path or method}"), {"method": method, "config": {**CONFIG, **config}}, table)


def finals(seed: int, test_accuracy: float, **extra) -> list[dict]:
    """Two search trials and the final policy of one seed."""
    return [trial(seed=seed, finished_at=1.0), trial(seed=seed, finished_at=2.0),
            trial(phase="final", label="pareto", seed=seed, accuracy=0.9, test_accuracy=test_accuracy, **extra)]


# -- choosing the reported policy -------------------------------------------------------------
def test_best_final_is_chosen_by_validation_not_test_and_only_within_budget():
    rows = [trial(phase="final", label="pareto", accuracy=0.80, test_accuracy=0.95, compute_seconds=2.0),
            trial(phase="final", label="pareto", accuracy=0.90, test_accuracy=0.85, cost=400.0, compute_seconds=2.0),
            # more accurate on validation but over the budget: never reported
            trial(phase="final", label="pareto", accuracy=0.99, test_accuracy=0.99, violation=0.2, cost=1200.0),
            # evo's in-run uniform reference: neither chosen nor counted
            trial(phase="uniform", label="uniform screen", compute_seconds=50.0),
            trial(phase="final", label="uniform reference", accuracy=0.95, test_accuracy=0.97, compute_seconds=50.0),
            trial(phase="final", label="uniform reference", accuracy=0.96, test_accuracy=0.97, compute_seconds=50.0),
            trial(phase="final", label="best uniform", accuracy=0.95, test_accuracy=0.97, compute_seconds=50.0),  # older runs
            trial(phase="search", compute_seconds=1.5)]
    table = per_seed_results([run_folder("evo", rows)])
    assert len(table) == 1
    row = table.iloc[0]
    assert row.test_accuracy == 0.85 and row.cost == 400.0
    assert row.trials == 4 and row.compute_seconds == pytest.approx(2.0 + 2.0 + 1.0 + 1.5)
    assert (row.screen_steps, row.final_steps) == (20, 200)
    assert (row.size_kib, row.honest_kib, row.energy_uj, row.latency_us) == pytest.approx((1.0, 2.0, 2.0, 3.0))


def test_a_final_policy_fine_tuned_with_several_seeds_counts_by_its_means():
    def final(key, repeat, val, test):
        return trial(phase="final", label="pareto", genome_key=key, repeat=repeat, accuracy=val, test_accuracy=test)

    # a: one lucky seed (0.95) but mean validation 0.86; b: mean validation 0.90
    rows = [final("a", 0, 0.95, 0.70), final("a", 1, 0.77, 0.72), final("b", 0, 0.90, 0.84), final("b", 1, 0.90, 0.86)]
    row = per_seed_results([run_folder("evo", rows)]).iloc[0]
    assert row.test_accuracy == pytest.approx(0.85) and row.trials == 4


def test_admm_epoch_rows_are_not_trials_and_each_budget_and_seed_is_a_sample():
    rows = []
    for budget, limit in (("bops=1/256", LIMIT), ("size=1/50", 4000.0)):
        for seed in (0, 1):
            rows.append(trial(phase="final", label=budget, budget=budget, limit=limit, seed=seed, steps=600,
                              test_accuracy=0.9 + seed / 100, compute_seconds=30.0))
            rows += [trial(phase="epoch", budget=budget, limit=limit, seed=seed, compute_seconds=None)] * 3
    table = per_seed_results([run_folder("admm", rows)])
    assert sorted(zip(table.metric, table.seed)) == [("bops", 0), ("bops", 1), ("size_bits", 0), ("size_bits", 1)]
    assert (table.trials == 1).all() and (table.compute_seconds == 30.0).all()
    assert table.screen_steps.isna().all() and (table.final_steps == 600).all()


def test_mean_and_sample_std_over_seeds():
    rows = [r for seed, acc in enumerate((0.90, 0.92, 0.94)) for r in finals(seed, acc)]
    summary = summarize(per_seed_results([run_folder("evo", rows)]))
    row = summary.iloc[0]
    assert row.n == 3 and row.test_mean == pytest.approx(0.92) and row.test_std == pytest.approx(0.02)
    assert row.trials == 3 and row.compute_seconds == pytest.approx(3.0) and row.compute_total == pytest.approx(9.0)
    assert row.steps == "20 / 200"


def test_refuses_different_datasets_and_repeated_seeds():
    a = run_folder("evo", finals(0, 0.9), path="a")
    b = run_folder("random", finals(0, 0.9), path="b", dataset="fashion-mnist")
    with pytest.raises(ValueError, match=r"runs differ in dataset: /runs/a has 'digits', /runs/b has 'fashion-mnist'"):
        check_comparable([a, b])
    with pytest.raises(ValueError, match=r"repeat method 'evo', budget 'bops=1/256' and seed 0"):
        per_seed_results([run_folder("evo", finals(0, 0.9), path="a"), run_folder("evo", finals(0, 0.8), path="c")])


def test_admm_runs_with_other_recipes_are_methods_of_their_own():
    def admm(path, **config):
        rows = [trial(phase="final", label="bops=1/256", seed=s, steps=600, test_accuracy=0.9) for s in (0, 1)]
        return run_folder("admm", rows, path=path, admm_batch_size=256, **config)

    own = admm("own", admm_epochs=4, admm_fine_tune_epochs=2, admm_quantizer="kmeans")
    equal = admm("equal", admm_epochs=8, admm_fine_tune_epochs=4, admm_quantizer="kmeans")
    uniform = admm("uniform", admm_quantizer="uniform", admm_lr=0.05)
    assert (own.label, equal.label) == ("admm", "admm (8+4 epochs)")
    assert uniform.label == "admm (uniform quantizer, lr 0.05)"
    summary = summarize(per_seed_results([own, equal, uniform]))
    assert list(summary.method) == ["admm", "admm (8+4 epochs)", "admm (uniform quantizer, lr 0.05)"]
    assert (summary.n == 2).all()
    text = "\n".join(budget_table(summary))
    assert f"| admm (8+4 epochs; {ADMM_EXTENSION}) | 2 |" in text
    assert "| /runs/equal | admm (8+4 epochs) | 0, 1 |" in format_report([own, equal, uniform], summary)


def test_search_runs_with_other_recipes_are_methods_of_their_own():
    """evo's default and evo with a short search and long finals, seeds 0 and 1 each: two methods
    (before, their seed-0 runs collided as one method's repeated seed); random runs of one recipe
    keep the plain name even though that recipe is not the default."""
    def run(method, path, seed, **config):
        return run_folder(method, finals(seed, 0.90 + 0.01 * seed), path=path, **config)

    long_final = {"final_steps": 2250, "final_top": 1, "generations": 2, "lr": 0.01}
    runs = [run("evo", "d0", 0), run("evo", "d1", 1, final_steps=500, final_uniform=1),  # 500: the default;
            # final_uniform sizes the in-run reference only, which the comparison leaves out: one recipe
            run("evo", "l0", 0, **long_final), run("evo", "l1", 1, **long_final),
            run("random", "r0", 0, population=6), run("random", "r1", 1, population=6)]
    summary = summarize(per_seed_results(runs))
    assert list(summary.method) == ["evo", "evo (generations 2, final_steps 2250, final_top 1)", "random"]
    assert (summary.n == 2).all()
    assert [r.label for r in runs[:2]] == ["evo", "evo"]
    report = format_report(runs, summary)
    assert "| /runs/l0 | evo (generations 2, final_steps 2250, final_top 1) | 0 |" in report
    assert "| evo (generations 2, final_steps 2250, final_top 1) | 2 | 90.50 ± 0.71 |" in report
    legend_labels = [c["method"] for c in hypervolume_curves(runs)]
    assert legend_labels == ["evo"] * 2 + ["evo (generations 2, final_steps 2250, final_top 1)"] * 2 + ["random"] * 2
    assert set(final_points(runs).method) == set(summary.method)
    # a larger validation split is a method of its own too (benchmarks/study_lenet.sh's evo-val20)
    split = [run("evo", "v0", 0, val_fraction=0.2), run("evo", "v1", 1, val_fraction=0.2)]
    summary = summarize(per_seed_results(runs[:2] + split))
    assert list(summary.method) == ["evo", "evo (val_fraction 0.2)"] and (summary.n == 2).all()


def test_the_run_table_lists_each_search_runs_settings_not_at_their_default():
    """A report of one non-default recipe alone keeps the plain method name (``name_recipes``), so
    its run table says what ran; a default run says none, ADMM points to its name."""
    long_final = {"final_steps": 2250, "final_top": 1, "generations": 2, "final_fill": True, "lr": 0.01}
    runs = [run_folder("evo", finals(seed, 0.91), path=f"l{seed}", **long_final) for seed in (0, 1)]
    runs.append(run_folder("admm", [trial(phase="final", label="bops=1/256", seed=0, steps=600, test_accuracy=0.9)],
                           path="a", admm_epochs=8, admm_fine_tune_epochs=4, admm_batch_size=256))
    summary = summarize(per_seed_results(runs))
    assert list(summary.method) == ["evo", "admm (8+4 epochs)"]
    report = format_report(runs, summary)
    assert "| /runs/l1 | evo | 1 | bops=1/256 | generations 2, final_steps 2250, final_top 1, final_fill True |" in report
    assert "| /runs/a | admm (8+4 epochs) | 0 | bops=1/256 | – (in the method's name) |" in report
    default = run_folder("evo", finals(0, 0.9), path="d", final_steps=500)  # a default, written out
    assert "| /runs/d | evo | 0 | bops=1/256 | none |" in format_report([default], summarize(per_seed_results([default])))


# -- sentences and tables ---------------------------------------------------------------------
def summary_of(spec: dict[str, tuple[float, ...]], budget: str = "bops=1/256") -> pd.DataFrame:
    runs = [run_folder(method, [r for seed, acc in enumerate(accs) for r in finals(seed, acc, budget=budget)])
            for method, accs in spec.items()]
    return summarize(per_seed_results(runs))


def test_gap_beyond_seed_spread():
    # evo 0.90/0.92/0.94 (std 2 points), random 0.80/0.81/0.82 (std 1 point): gap 11 points > 3
    (sentence,) = comparison_sentences(summary_of({"evo": (0.90, 0.92, 0.94), "random": (0.80, 0.81, 0.82)}))
    assert sentence == ("At bops=1/256, evo is ahead of random by 11.00 points of test accuracy (92.00% vs 81.00%); "
                        "the gap exceeds the seed-to-seed spread (std 2.00 + 1.00 points).")


def test_gap_within_seed_spread_and_single_seed():
    (within,) = comparison_sentences(summary_of({"evo": (0.90, 0.94), "optuna": (0.91, 0.91)}))
    assert within == ("At bops=1/256, evo is ahead of optuna by 1.00 points of test accuracy (92.00% vs 91.00%); "
                      "the gap is within seed spread (std 2.83 + 0.00 points).")
    (single,) = comparison_sentences(summary_of({"evo": (0.90,), "uniform": (0.95,)}))
    assert single.startswith("At bops=1/256, uniform is ahead of evo by 5.00 points")
    assert "seed-to-seed spread is unknown" in single
    (alone,) = comparison_sentences(summary_of({"evo": (0.90,)}))
    assert "nothing to compare" in alone


def test_screened_front_hypervolume_per_seed_and_its_sentence():
    def seed_rows(method_accuracy, seed):
        # two feasible screened points and one over the budget (ignored): (0.6, 500) and (0.8, 750)
        return [trial(seed=seed, accuracy=method_accuracy[0], cost=500.0),
                trial(seed=seed, accuracy=method_accuracy[1], cost=750.0),
                trial(seed=seed, accuracy=0.99, cost=1500.0, violation=0.5),
                trial(phase="final", label="pareto", seed=seed, accuracy=0.9, test_accuracy=0.9)]

    evo = run_folder("evo", seed_rows((0.6, 0.8), 0) + seed_rows((0.6, 0.8), 1))
    uniform = run_folder("uniform", seed_rows((0.4, 0.5), 0) + seed_rows((0.5, 0.5), 1))
    summary = summarize(per_seed_results([evo, uniform]))
    volumes = dict(zip(summary.method, summary.hv_mean))
    # area up to cost = budget: evo 0.6 x (0.75 - 0.5) + 0.8 x (1 - 0.75) = 0.35 for both seeds;
    # uniform seed 0: 0.4 x 0.25 + 0.5 x 0.25 = 0.225, seed 1: 0.5 x 0.5 = 0.25
    assert volumes == pytest.approx({"evo": 0.35, "uniform": 0.2375})
    (sentence,) = hypervolume_sentences(summary)
    assert sentence == ("At bops=1/256, evo is ahead of uniform by 0.1125 in hypervolume of the screened front "
                        "(validation) (0.3500 vs 0.2375); the gap exceeds the seed-to-seed spread "
                        "(std 0.0000 + 0.0177).")
    assert "| evo | 2 | 90.00 ± 0.00 | 0.3500 ± 0.0000 |" in "\n".join(budget_table(summary))


def test_table_flags_unequal_fine_tune_budgets_and_marks_admm_bops_as_extension():
    admm_rows = [trial(phase="final", label="bops=1/256", seed=s, steps=600, test_accuracy=0.9) for s in (0, 1)]
    admm_size = [trial(phase="final", label="size=1/50", budget="size=1/50", limit=4000.0, seed=0, steps=600,
                       test_accuracy=0.9)]
    runs = [run_folder("evo", finals(0, 0.93), batch_size=64), run_folder("admm", admm_rows + admm_size,
                                                                         admm_batch_size=256)]
    summary = summarize(per_seed_results(runs))
    bops = summary[summary.metric == "bops"]
    text = "\n".join(budget_table(bops))
    assert f"| admm ({ADMM_EXTENSION}) | 2 | 90.00 ± 0.00 |" in text
    # hypervolume 0.5 x (1 - 500/1000); samples (20 + 20 + 200 steps) x 64 per seed
    assert "| evo | 1 | 93.00 (one seed) | 0.2500 | 100.0× | 10.0× | 1 / 2 | 2 | 3 | 3 | 15,360 | 3.0 |" in text
    # ADMM: 600 steps x 256 = 153,600 samples in 1 s; evo: 15,360 samples in 3 s (three trials of 1 s)
    assert "**Unequal compute** at bops=1/256: admm got 900% more fine-tune samples per seed than evo " \
           "(153,600 vs 15,360)." in text
    assert "**Unequal compute** at bops=1/256: evo got 200% more trial seconds per seed than admm (3.0 vs 1.0)." in text
    from evo.compare.tables import compute_lines
    printed = compute_lines(summary)
    assert "compute per seed at bops=1/256 (fine-tune samples / trial seconds): evo 15,360 samples / 3.0 s, " \
           "admm 153,600 samples / 1.0 s" in printed and sum("Unequal compute" in line for line in printed) == 2
    assert f"| admm ({ADMM_EXTENSION}) | 2 | 90.00 ± 0.00 | – |" in text  # ADMM screens nothing
    assert "**Unequal fine-tune budgets between methods** (steps per trial, screen / final): evo 20 / 200, admm – / 600" in text
    size_text = "\n".join(budget_table(summary[summary.metric == "size_bits"]))
    assert "| admm | 1 |" in size_text and "extension" not in size_text and "Unequal" not in size_text
    report = format_report(runs, summary)
    assert "## Budget bops=1/256 (bops ≤ 1000)" in report and "## Budget size=1/50 (size_bits ≤ 4000)" in report


# -- hypervolume and figures ------------------------------------------------------------------
def test_hypervolume_curve_by_hand():
    rows = [trial(accuracy=0.5, cost=500.0, finished_at=1.0),
            trial(accuracy=0.9, cost=100.0, status="failed", finished_at=2.0),  # failed: adds nothing
            trial(accuracy=0.99, cost=1500.0, violation=0.5, finished_at=3.0),  # over budget: adds nothing
            trial(accuracy=0.8, cost=900.0, finished_at=4.0)]
    (curve,) = hypervolume_curves([run_folder("random", rows), run_folder("uniform", rows)])  # uniform: no curve
    # (acc, cost/limit) points (0.5, 0.5) and (0.8, 0.9) against the reference (0, 1):
    # 0.5 * 0.5 + 0.8 * 0.1 - overlap 0.5 * 0.1 = 0.28
    assert curve["method"] == "random"
    assert curve["hypervolume"] == pytest.approx([0.25, 0.25, 0.25, 0.28])


def test_successive_halving_rungs_count_as_compute_but_only_the_top_rung_is_ranked():
    def seed_rows(seed):
        # a short rung-0 fine-tune reports 0.99 at cost 100: never a point of the front
        return [trial(seed=seed, rung=0, steps=7, accuracy=0.99, cost=100.0, finished_at=1.0),
                trial(seed=seed, rung=0, steps=7, accuracy=0.4, cost=500.0, finished_at=2.0),
                trial(seed=seed, rung=1, steps=20, accuracy=0.6, cost=500.0, finished_at=3.0),
                trial(phase="final", label="pareto", seed=seed, accuracy=0.9, test_accuracy=0.9)]

    evo = run_folder("evo", seed_rows(0) + seed_rows(1), batch_size=64)
    random_run = run_folder("random", [trial(seed=0, accuracy=0.6, cost=500.0),
                                       trial(phase="final", label="pareto", seed=0, accuracy=0.9,
                                             test_accuracy=0.9)], batch_size=64)
    summary = summarize(per_seed_results([evo, random_run]))
    row = summary[summary.method == "evo"].iloc[0]
    assert row.hv_mean == pytest.approx(0.6 * 0.5)  # the top rung's (0.6, 500) alone
    assert row.samples == (7 + 7 + 20 + 200) * 64  # every rung's steps are fine-tune samples
    text = "\n".join(budget_table(summary))
    assert "| 20 / 200 (rungs 7→20) |" in text
    assert "Unequal fine-tune budgets" not in text  # the ranked fidelity, 20 / 200, is the same
    (curve,) = [c for c in hypervolume_curves([evo]) if c["budget"] == "bops=1/256"]
    assert curve["hypervolume"] == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.3, 0.3])


def legend(fig) -> list[list[str]]:
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend()]


def test_figures_have_one_series_per_method_and_one_panel_per_budget(tmp_path):
    runs = [run_folder("evo", finals(0, 0.93) + finals(1, 0.91)), run_folder("random", finals(0, 0.90)),
            run_folder("admm", [trial(phase="final", label="size=1/50", budget="size=1/50", limit=4000.0,
                                      test_accuracy=0.9)])]
    summary = summarize(per_seed_results(runs))
    assert legend(pareto_figure(final_points(runs))) == [["evo", "random"], ["admm"]]
    assert legend(accuracy_vs_budget_figure(summary)) == [["evo", "random"], ["admm"]]
    assert legend(hypervolume_figure(hypervolume_curves(runs))) == [["evo", "random"]]
    assert legend(compute_figure(summary)) == [["evo", "random", "admm"]]
    written = write_report(runs, tmp_path / "out")
    assert [p.name for p in written] == ["report.md", "pareto.png", "accuracy_vs_budget.png", "hypervolume.png",
                                         "compute.png"]
    for path in written[1:]:
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def test_read_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match=r"is not a run folder \(no run.yaml or trials.parquet\)"):
        read_run(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"method": "evo", "config": CONFIG}))
    PartWriter(tmp_path / "trials.parquet", TRIAL_SCHEMA).append(finals(0, 0.9))
    run = read_run(tmp_path)
    assert run.method == "evo" and len(run.trials) == 3 and run.trials.test_accuracy.max() == 0.9


# -- real runs through the command line (Ray) -------------------------------------------------


TINY = {"model": "mlp", "dataset": "digits", "budget": "bops=1/256", "target": "bitserial", "population": 4,
        "generations": 2, "fine_tune_steps": 20, "final_steps": 40, "batch_size": 64, "lr": 0.05,
        "sparsity_choices": [0.0, 0.5, 0.8, 0.95], "weight_bit_choices": [2, 4, 8],
        "activation_bit_choices": [2, 4, 8]}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    config = storage / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    commands = {"evo": ["search"], "random": ["baseline", "random"]}
    if importlib.util.find_spec("optuna"):  # an optional extra: without it, evo and random only
        commands["optuna"] = ["baseline", "optuna"]
    for name, command in commands.items():
        result = run_evo([*command, "--config", str(config), "--storage", str(storage), "--name", name], cwd=storage)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return storage, list(commands)


@pytest.mark.ray
@pytest.mark.slow
def test_baseline_run_folders_have_the_search_schema(tiny_runs):
    storage, methods = tiny_runs
    counts = {}
    for method in methods:
        meta = yaml.safe_load((storage / method / "run.yaml").read_text())
        assert meta["method"] == method and meta["config"]["dataset"] == "digits" and meta["budget_limit"] > 0
        trials = pd.read_parquet(storage / method / "trials.parquet")
        search = trials[trials.phase == "search"]
        assert (trials.method == method).all()
        assert search.genome_key.is_unique, "a genome was trained twice"
        counts[method] = len(search)
        assert (search.status == "ok").all() and (search.violation == 0).all(), "an infeasible policy was trained"
        assert (search.steps == 20).all()
        pareto = pd.read_parquet(storage / method / "pareto.parquet")
        assert len(pareto) >= 1 and (pareto.steps == 40).all() and pareto.test_accuracy.between(0, 1).all()
    # every method trains as many policies as evo search: a population per generation, the first
    # one included (the uniform screens for evo's best-uniform line are not search trials)
    assert len(set(counts.values())) == 1, counts
    assert counts["evo"] >= TINY["population"] * TINY["generations"]
    if "optuna" in methods:
        stats = yaml.safe_load((storage / "optuna" / "run.yaml").read_text())["search_stats"]
        assert stats["trials"] == counts["evo"] and stats["over_budget_suggestions"] >= 0


@pytest.mark.ray
@pytest.mark.slow
def test_compare_writes_report_and_plots(tiny_runs, tmp_path):
    storage, methods = tiny_runs
    result = run_evo(["compare", *(str(storage / m) for m in methods), "--out", str(tmp_path / "report")],
                     cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Budget bops=1/256 (bops ≤ 25856)" in report
    for method in methods:
        assert f"| {method} | 1 | " in report and f"| {storage / method} | {method} | 0 | bops=1/256 |" in report
    assert report.count("points of test accuracy") == len(methods) - 1
    assert report.count("in hypervolume of the screened front") == len(methods) - 1  # all of them screen
    assert "Unequal fine-tune budgets" not in report  # same steps per trial everywhere
    for name in ("pareto.png", "accuracy_vs_budget.png", "hypervolume.png", "compute.png"):
        data = (tmp_path / "report" / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000
    runs = [read_run(storage / m) for m in methods]
    assert legend(pareto_figure(final_points(runs))) == [methods]
    curves = hypervolume_curves(runs)
    search_trials = len(read_run(storage / "evo").trials.query("phase == 'search'"))
    assert [c["method"] for c in curves] == methods
    assert all(len(c["hypervolume"]) == search_trials for c in curves)  # one point per trial, same budget
    generations = pd.read_parquet(storage / "evo" / "generations.parquet")
    evo_curve = curves[0]["hypervolume"]
    assert [evo_curve[n - 1] for n in generations.trials_total] == pytest.approx(list(generations.hypervolume))
    # the table's screened-front hypervolume is the one evo search logged at its last generation
    per_seed = per_seed_results(runs)
    assert per_seed[per_seed.method == "evo"].hypervolume.iloc[0] == pytest.approx(generations.hypervolume.iloc[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_compare_refuses_other_datasets_and_non_runs(tiny_runs, tmp_path):
    storage, _ = tiny_runs
    other = tmp_path / "other"
    shutil.copytree(storage / "random", other)
    meta = yaml.safe_load((other / "run.yaml").read_text())
    meta["config"]["dataset"] = "fashion-mnist"
    (other / "run.yaml").write_text(yaml.safe_dump(meta))
    result = run_evo(["compare", str(storage / "evo"), str(other), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.returncode == 2
    assert f"runs differ in dataset: {storage / 'evo'} has 'digits', {other} has 'fashion-mnist'" in result.stderr
    result = run_evo(["compare", str(storage / "evo"), str(tmp_path), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.returncode == 2 and "is not a run folder" in result.stderr
    assert not (tmp_path / "out").exists()
