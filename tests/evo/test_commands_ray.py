"""Commands run to completion, and budgets hold on every trained row, on real local Ray with real
(tiny) training: `evo pretrain`, `evo profile`, `evo baseline uniform`; a search at each budget
metric whose every row is re-priced from its genome; LeNet-5 on Fashion-MNIST with channel
pruning under a size budget through one real trial; an ADMM run killed mid-run and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from cli_runner import EVO, run_evo
from trainings import trainings

from evo.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# two bit widths per gene: 4 uniform policies, so generation 0 and the uniform screen stay short
SMALL = dict(model="mlp", dataset="digits", target="bitserial", population=4, generations=1, fine_tune_steps=20,
             final_steps=40, final_top=1, batch_size=64, lr=0.05, seed=0, weight_bit_choices=[2, 4],
             activation_bit_choices=[2, 4])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_CACHE_DIR", str(tmp_path / "cache"))


def test_pretrain_and_profile_run_to_completion(tmp_path, cache, capsys):
    assert main(["pretrain", "--model", "mlp", "--dataset", "digits", "--epochs", "3",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]  # the command's own line, after the epoch lines
    accuracy = float(summary.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.8 and "(trained:" in summary  # digits: 10 classes, chance 0.10
    assert main(["pretrain", "--model", "mlp", "--dataset", "digits", "--epochs", "3",
                 "--cache-dir", str(tmp_path / "cache")]) == 0 and "(cached:" in capsys.readouterr().out
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"structure": "unstructured", "layers": {
        name: {"sparsity": 0.5, "weight_bits": 4, "activation_bits": 8} for name in ("fc1", "fc2", "fc3")}}))
    assert main(["profile", "--model", "mlp", "--dataset", "digits", "--policy", str(policy), "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    # fc1 64x64, fc2 64x32, fc3 32x10: 6464 weights; half kept at 4 bits
    assert profile["totals"]["size_bits"] == 3232 * 4 and [r["name"] for r in profile["layers"]] == ["fc1", "fc2", "fc3"]
    assert main(["profile", "--model", "mlp", "--dataset", "digits"]) == 0
    assert "BOPs reduction: 1x vs FP32" in capsys.readouterr().out


def test_baseline_uniform_runs_to_completion(tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "budget": "bops=1/64"}))
    result = run_evo(["baseline", "uniform", "--config", str(config), "--storage", str(tmp_path / "runs"),
                      "--name", "u"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "runs" / "u" / "trials.parquet")
    search, final = trials[trials.phase == "search"], trials[trials.phase == "final"]
    assert (trials.method == "uniform").all() and len(search) == 4 and (search.status == "ok").all()
    # one final policy, fine-tuned and tested with each of the two final seeds
    assert len(final) == 2 and sorted(final.repeat) == [0, 1] and final.genome_key.nunique() == 1
    assert (final.test_accuracy > 0.5).all() and search.test_accuracy.isna().all()


@pytest.mark.parametrize("budget", ["size_honest=1/10", "energy=1/20", "latency=1/4", "bops=1/128"])
def test_every_trained_row_is_within_the_budget(tmp_path, cache, budget):
    from evo.methods import run_method
    from evo.runs.config import SearchConfig
    from evo.runs.prepare import build_space
    from evo.core.cost_table import make_cost_fn
    from hardware.budget import budget_limit, parse_budget
    from hardware.specs import LayerSpec
    from hardware.targets import load_target

    # two generations: offspring are made, so repair has work (generation 0 alone is the uniform sweep)
    cfg = SearchConfig(**{**SMALL, "generations": 2}, budget=budget, storage=str(tmp_path / "runs"), name="b")
    outcome = run_method("evo", cfg, log=lambda *_: None)
    run = yaml.safe_load((outcome.run_dir / "run.yaml").read_text())
    specs = [LayerSpec.from_dict(layer) for layer in run["layers"]]
    metric, target = parse_budget(budget).metric, load_target("bitserial")
    limit = budget_limit(parse_budget(budget), specs, target)
    cost = make_cost_fn(build_space(cfg, specs), specs, target, metric)  # priced again, from the genome alone
    trials = pd.read_parquet(outcome.run_dir / "trials.parquet")
    assert len(trials) >= 5 and (trials.status == "ok").all()
    for genome in trials.genome:
        assert cost(tuple(genome)) <= limit
    assert (trials.violation == 0).all() and (trials.cost <= trials["limit"]).all()


def test_lenet5_fashion_mnist_channel_pruning_under_a_size_budget_through_one_real_trial(tmp_path, cache):
    """The real dataset and model with channel structure: base weights from a quick 1-epoch
    pretraining (cached in the test's folder), one policy trial through Tune."""
    import ray
    from ray import tune

    from evo.core.repair import repair
    from evo.core.trial import outcome, trial_config
    from evo.runs.config import SearchConfig
    from evo.runs.pipeline import make_trainable
    from evo.runs.prepare import prepare
    from evo.tune.cluster import start_ray
    from evo.tune.tuner import build_tuner

    cfg = SearchConfig(model="lenet5", dataset="fashion-mnist", budget="size_honest=1/20", structure="channel",
                       pretrain_epochs=1, fine_tune_steps=30, batch_size=128, storage=str(tmp_path / "runs"),
                       name="lenet")
    prep = prepare(cfg, log=lambda *_: None)
    genome = repair(prep.space.uniform_genomes()[0], prep.space, prep.cost_fn, prep.limit)
    start_ray(None, num_cpus=1, log=lambda *_: None)
    try:
        config = trial_config(genome, prep.space.decode(genome).to_dict(), phase="search")
        grid = build_tuner(make_trainable(prep), run_dir=tmp_path / "runs" / "lenet", experiment="one",
                           param_space={"item": tune.grid_search([config])}, max_concurrent=1, max_failures=0,
                           verbose=0, num_samples=1).fit()
        result = grid[0]
    finally:
        ray.shutdown()
    assert not outcome(result.metrics, result.error is not None).failed, result.metrics.get("error")
    metrics = result.metrics
    assert metrics["violation"] == 0 and metrics["cost"] <= prep.limit
    assert metrics["accuracy"] > 0.5  # Fashion-MNIST: 10 classes, chance 0.10
    assert "test_accuracy" not in metrics  # a screening trial never reads the test split
    policy = config["policy"]
    assert policy["structure"] == "channel" and min(layer["keep_ratio"] for layer in policy["layers"].values()) < 1


def test_admm_killed_mid_run_resumes_only_what_was_not_finished(tmp_path):
    args = ["baseline", "admm", "--model", "mlp", "--dataset", "digits", "--budget", "size=1/50", "--budget",
            "size=1/20", "--seeds", "1", "--epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "64",
            "--pretrain-epochs", "4", "--max-concurrent", "1", "--storage", str(tmp_path / "runs"), "--name", "a"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", EVO_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen(EVO + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    run = tmp_path / "runs" / "a"
    deadline = time.time() + 300
    while not list(run.glob("policies/*.yaml")):  # the first trial's rows and policy are written
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # one budget finished, the other one not
    proc.wait(timeout=30)
    first = trainings(run)
    assert sum(first.values()) == 1, first

    result = run_evo(args + ["--resume"], cwd=tmp_path, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 already finished" in result.stdout
    trained = trainings(run)
    assert sorted(trained) == [("final", "size=1/20", 0), ("final", "size=1/50", 0)] and max(trained.values()) == 1
    finals = pd.read_parquet(run / "trials.parquet").query("phase == 'final'")
    assert sorted(finals.budget) == ["size=1/20", "size=1/50"] and (finals.status == "ok").all()
