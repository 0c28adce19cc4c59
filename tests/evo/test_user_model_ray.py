"""A model of the user's (examples/tiny_cnn.py, not in the zoo) on data from an .npz the test writes:
a channel-structured search through real Ray, an unstructured one exported to packed weights and
ONNX checked in onnxruntime, and the Python API on a model class defined here with arrays."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_runner import run_evo

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(population=4, generations=1, fine_tune_steps=20, final_steps=40, final_top=1, batch_size=64,
             weight_bit_choices=[4, 8], activation_bit_choices=[4, 8], pretrain_epochs=10)


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "fashion-small.npz"
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_npz.py"), str(path), "--train", "3000",
                    "--test", "1000"], check=True, cwd=ROOT, capture_output=True)
    return path


def search(tmp_path, npz, name, **settings):
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**SMALL, **settings}))
    result = run_evo(["search", "--model", f"{ROOT}/examples/tiny_cnn.py:build", "--model-args", '{"width": 8}',
                      "--dataset", str(npz), "--config", str(config), "--storage", str(tmp_path / "runs"),
                      "--name", name], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path / "runs" / name, result


def test_channel_search_of_a_user_model_keeps_traced_ties(tmp_path, npz):
    run, _ = search(tmp_path, npz, "channel", structure="channel", budget="bops=1/16")
    trials = pd.read_parquet(run / "trials.parquet")
    ok = trials[trials.status == "ok"]
    assert len(ok) >= 4 and (ok.violation == 0).all()
    # the residual add ties block.project to the stem (traced): the stem's keep ratio holds for both, so
    # block.project's pruning gene is fixed at its one choice (1.0, never applied) and not searched
    state = json.loads((run / "search_state.json").read_text())
    assert "block.project" in state["population"]["space"]["fixed_pruning"]
    assert "stem" not in state["population"]["space"]["fixed_pruning"]
    for policy in map(json.loads, ok.policy):
        assert policy["layers"]["block.project"]["keep_ratio"] == 1.0
    assert "classifier" not in {name for name, layer in json.loads(ok.policy.iloc[0])["layers"].items()
                                if layer["keep_ratio"] < 1}  # the classes are never pruned
    final = pd.read_parquet(run / "pareto.parquet")
    assert final.test_accuracy.max() > 0.5  # Fashion-MNIST, 10 classes: chance 0.10


@pytest.fixture(scope="module")
def moved_run(tmp_path_factory, npz):
    """An unstructured search of the user's model whose folder then moved and was renamed (its
    run.yaml names the old place): what reads it must read the folder where it is."""
    where = tmp_path_factory.mktemp("unstructured")
    # lr 0.02 and seed 3, not the benchmarks' defaults (0.01, 0): a measurement must use the run's
    searched, _ = search(where, npz, "unstructured", budget="bops=1/16", lr=0.02, seed=3)
    run = where / "moved" / "renamed"
    run.parent.mkdir()
    searched.rename(run)
    return run


def test_a_user_model_exports_to_packed_weights_and_onnx(tmp_path, moved_run):
    run = moved_run
    assert list((run / "models").glob("*.pt")), "the final trials saved no model"
    result = run_evo(["export", str(run), "--out", str(tmp_path / "export")], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["model.evo.pt", "model.onnx", "policy.yaml",
                                                                        "report.md"]
    out = result.stdout
    # the BatchNorms fold into their convs: float rounding may move an activation across a rounding
    # boundary of the next quantizer (one step), never the predictions on more than 0.1 %
    reload = out.split("evo.load_compressed on the test split: outputs ")[1].split("\n")[0]
    assert float(reload.split("top-1 agreement ")[1].split("%")[0]) >= 99.9, out
    ratio = float(out.split("priced honest size ")[1].split(": ")[1].split("x")[0])
    # packed payload against the priced honest size (each folded BatchNorm priced as one bias per channel)
    assert 1.0 <= ratio <= 1.05, out
    agreement = float(out.split("top-1 agreement ")[1].split("%")[0])
    assert agreement >= 99.9, out
    # the exported model is the seed-0 fine-tune of the policy with the best mean validation accuracy
    # over its final seeds: its test accuracy is the one the run recorded for that fine-tune
    final = pd.read_parquet(run / "pareto.parquet")
    best = final.groupby("genome_key").accuracy.mean().idxmax()
    (recorded,) = final[(final.genome_key == best) & (final.repeat.fillna(0) == 0)].test_accuracy
    torch_accuracy = float(out.split(" (onnxruntime) vs ")[1].split("%")[0]) / 100
    assert torch_accuracy == pytest.approx(recorded, abs=1e-9)
    # bad input: a row that does not exist, an --out that is not empty: exit 2, nothing written
    for out, args, needle in (("new", ["--policy", "99"], "has rows 0.."), ("export", [], "not an empty folder"),
                              ("new", ["--policy", "missing.yaml"], "neither a row number")):
        bad = run_evo(["export", str(run), "--out", str(tmp_path / out), *args], cwd=tmp_path, timeout=120)
        assert bad.returncode == 2 and needle in bad.stderr, bad.stderr
        assert not (tmp_path / "new").exists()


def test_rank_fidelity_measures_a_users_run_with_the_runs_own_trial(moved_run, monkeypatch):
    """benchmarks/rank_fidelity.py --run: the run's model, data, base and trial settings (this run's
    batch 64, 20 steps and lr 0.02, not the benchmark's zoo defaults), so a policy the search screened
    scores what the search recorded; nothing is written into the run."""
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import rank_fidelity
    from evo.core.genome import genome_from_key

    before = {p: p.stat().st_mtime_ns for p in moved_run.rglob("*")}
    args = rank_fidelity.parse_args(["--run", str(moved_run), "--policies", "3"])
    prepared = rank_fidelity.setup(args)
    assert (args.screen_steps, args.final_steps, args.batch_size, args.lr) == (20, 40, 64, 0.02)
    assert len(prepared[5]) == 3  # the policies spread over the cost axis
    trials = pd.read_parquet(moved_run / "trials.parquet")
    screened = trials[(trials.phase == "search") & (trials.status == "ok")].iloc[0]
    meta = yaml.safe_load((moved_run / "run.yaml").read_text())
    assert args.seed == meta["config"]["seed"] and meta["base_model"]["epochs"] == 10  # what a resume pins
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the one-CPU trial that screened it
    try:
        again = rank_fidelity.val_accuracy(prepared, genome_from_key(screened.genome_key), args.seed,
                                           args.screen_steps)
        # part (a)'s per-image view of the same trial: its mean is the trial's validation accuracy
        correct = rank_fidelity.val_correct(prepared, genome_from_key(screened.genome_key), args.seed,
                                            args.screen_steps)
    finally:
        torch.set_num_threads(threads)
    assert again == screened.accuracy
    assert correct.shape == prepared[0].val_y.shape and correct.double().mean().item() == pytest.approx(again)
    # --noise-top K: the run's K most accurate distinct screened policies, none left out that beat them
    top_args = rank_fidelity.parse_args(["--run", str(moved_run), "--noise-top", "2"])
    top = rank_fidelity.noise_genomes(top_args, prepared[3], prepared[5], rank_fidelity.top_screened(trials, 2))
    ok = trials[(trials.phase == "search") & (trials.status == "ok")]
    ok = ok[ok.steps == ok.steps.max()]  # the top rung (this run has one)
    best = {key: ok[ok.genome_key == key].accuracy.max() for key in ok.genome_key}
    chosen = [key for key in best if genome_from_key(key) in top]
    assert len(top) == len(set(top)) == len(chosen) == 2
    assert min(best[key] for key in chosen) >= max(acc for key, acc in best.items() if key not in chosen)

    def unprepared(*args, **kwargs):
        raise AssertionError("the run's inputs were prepared before --noise-top was checked")

    with monkeypatch.context() as patch:
        patch.setattr("evo.runs.prepare.prepare", unprepared)
        with pytest.raises(SystemExit, match="ask for --noise-top <= that"):
            rank_fidelity.main(["--run", str(moved_run), "--noise-only", "--noise-top", "999"])
    assert {p: p.stat().st_mtime_ns for p in moved_run.rglob("*")} == before
    for other in (["--model", "lenet5"], ["--pretrain-epochs", "3"]):  # the run names its own model and base
        with pytest.raises(SystemExit):
            rank_fidelity.parse_args(["--run", str(moved_run), *other])


def test_python_api_on_a_model_class_and_arrays(tmp_path, npz):
    import torch
    from torch import nn

    import evo

    class Net(nn.Module):  # the caller's own class, defined here: evo pickles it by value for the workers
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 5, stride=2)
            self.fc = nn.Linear(6 * 12 * 12, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))

    arrays = dict(np.load(npz))
    table = evo.profile(Net(), (1, 28, 28))
    assert table["totals"]["macs"] == 6 * 25 * 12 * 12 + 6 * 144 * 10
    result = evo.search(Net, arrays, budget="bops=1/16", storage=str(tmp_path / "runs"), name="api",
                        log=lambda *_: None, **SMALL)
    assert result.run_dir == tmp_path / "runs" / "api" and result.best is not None
    ok = [r for r in result.front if r["status"] == "ok" and r["violation"] <= 0]
    means = {key: statistics.fmean(r["accuracy"] for r in ok if r["genome_key"] == key) for key in {r["genome_key"] for r in ok}}
    # the best MEAN validation accuracy over the final seeds (2 here), as the final table and export choose
    assert result.best["genome_key"] == max(means, key=means.get) and result.best["repeats"] == 2
    assert result.best["accuracy"] == pytest.approx(max(means.values()))
    assert set(result.best_policy.names) == {"conv", "fc"} and result.best["test_accuracy"] > 0.5
