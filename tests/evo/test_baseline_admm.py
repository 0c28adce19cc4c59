"""`evo baseline admm`: validation before Ray, and one real Ray run on digits."""

import argparse
import json

import pandas as pd
import pytest
import yaml

from evo.methods.admm import ADMMConfig, budget_slug
from evo.cli.baseline import admm_config as config_from_args, register


def parse(argv):
    parser = argparse.ArgumentParser(prog="evo")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["baseline", "admm", *argv])


def digits_argv(tmp_path, *extra):
    return ["--model", "mlp", "--dataset", "digits", "--storage", str(tmp_path / "runs"), "--name", "t",
            "--pretrain-epochs", "8", *extra]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private checkpoint cache, and one torch thread for the driver's tiny pretraining (on a
    busy 2-core machine a second thread only spins)."""
    import torch

    monkeypatch.setenv("EVO_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_flags_reach_the_config(tmp_path):
    args = parse(digits_argv(tmp_path, "--budget", "size=1/50", "--budget", "bops=1/300", "--seeds", "2",
                             "--epochs", "7", "--rho", "0.1", "--quantizer", "uniform", "--activation-bits", "4"))
    cfg = config_from_args(args)
    assert cfg.budgets == ("size=1/50", "bops=1/300") and cfg.seeds == 2 and cfg.activation_bits == 4
    assert (cfg.admm.epochs, cfg.admm.rho, cfg.admm.quantizer, cfg.admm.fine_tune_epochs) == (7, 0.1, "uniform", 2)
    paper = config_from_args(parse(digits_argv(tmp_path, "--budget", "size=1/50", "--paper", "--epochs", "3")))
    assert (paper.admm.epochs, paper.admm.lr, paper.admm.momentum, paper.admm.batch_size) == (3, 0.1, 0.93, 256)
    assert args.handler.__name__ == "cmd_admm"


@pytest.mark.parametrize("flags,message", [
    (["--budget", "size=1/50", "--rho", "0"], "rho=0"),
    (["--budget", "size=1/50", "--rho", "-1"], "rho=-1"),
    (["--budget", "size=1/50", "--quantizer", "ternary"], r"quantizer='ternary'.*\['kmeans', 'uniform'\]"),
    (["--budget", "energy=1/20"], r"energy_pj.*\['size_bits', 'bops'\]"),
    (["--budget", "size=1/50", "--budget", "size=1/50"], "repeat"),
    (["--budget", "size=1/50", "--seeds", "0"], "seeds=0"),
    (["--budget", "size=1/50", "--activation-bits", "1"], "activation_bits=1"),
])
def test_bad_input_fails_before_anything_runs(tmp_path, flags, message):
    import ray

    args = parse(digits_argv(tmp_path, *flags))
    with pytest.raises(ValueError, match=message):
        args.handler(args)
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_unreachable_budget_names_the_minimum(tmp_path, cache):
    import ray

    # The MLP has 3 layers: one weight each at 2 bits is 6 bits; size=1e-6 of 6464 x 32 bits is 0.2 bits.
    args = parse(digits_argv(tmp_path, "--budget", "size=1e-6xfp32"))
    with pytest.raises(ValueError, match=r"below what the ADMM baseline can reach.*costs 6 \(3 layers\)"):
        args.handler(args)
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()  # refused before pretraining


def test_config_round_trips_for_resume_checks():
    data = ADMMConfig(model="mlp", dataset="digits", budgets=("size=1/50",)).to_dict()
    assert data["budgets"] == ["size=1/50"] and data["admm_rho"] == 0.05 and "admm_seed" not in data
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert budget_slug("bops=1/128xint8") == "bops_1_128xint8"


@pytest.mark.ray
def test_ray_run_writes_rows_and_policies_priced_like_evo(tmp_path, cache):
    import ray

    from evo.tune.cluster import start_ray
    from hardware.cost import total_costs
    from hardware.policy import Policy
    from hardware.specs import LayerSpec

    args = parse(digits_argv(tmp_path, "--budget", "size=1/50", "--seeds", "1", "--epochs", "2",
                             "--fine-tune-epochs", "1", "--batch-size", "64"))
    start_ray(None, num_cpus=2, log=lambda _: None)
    try:
        assert args.handler(args) == 0
    finally:
        ray.shutdown()
    run_dir = tmp_path / "runs" / "t"
    run = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert run["method"] == "admm" and run["config"]["admm_quantizer"] == "kmeans"
    specs = [LayerSpec.from_dict(layer) for layer in run["layers"]]
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert set(table["method"]) == {"admm"}
    final = table[table["phase"] == "final"]
    epochs = table[table["phase"] == "epoch"]
    assert len(final) == 1 and list(epochs["epoch"]) == [1, 2, 3]
    row = final.iloc[0]
    assert row["status"] == "ok" and row["budget"] == "size=1/50" and row["seed"] == 0
    assert row["violation"] == 0 and row["cost"] <= row["limit"] == pytest.approx(6464 * 32 / 50)
    assert 0 <= row["test_accuracy"] <= 1 and row["accuracy"] > 0.8
    extra = json.loads(row["extra"])
    assert sum(b * n for b, n in zip(extra["bits_per_layer"], extra["nonzero_per_layer"])) <= row["limit"]
    policy = Policy.from_dict(json.loads(row["policy"]))
    costs = total_costs(specs, policy, "bitserial")
    assert costs["size_bits"] == row["size_bits"] == row["cost"]
    assert costs["bops_vs_fp32"] == pytest.approx(row["bops_vs_fp32"])
    assert Policy.load(run_dir / "policies" / "size_1_50-seed0.yaml") == policy  # `evo profile --policy` reads it
    from evo.compare.tables import per_seed_results
    from evo.runs.folder import read_run

    # `evo compare` counts ADMM's fine-tune samples from this run.yaml: every step of batch 64
    assert per_seed_results([read_run(run_dir)]).samples.iloc[0] == row["steps"] * 64 > 0
    for _, epoch in epochs.iterrows():  # every epoch's policy is priced the same way
        assert total_costs(specs, Policy.from_dict(json.loads(epoch["policy"])), "bitserial")["size_bits"] \
            == epoch["cost"] <= epoch["limit"]
    # --resume finds every budget x seed finished: nothing runs, Ray does not start, rows stay.
    resumed = parse(digits_argv(tmp_path, "--budget", "size=1/50", "--seeds", "1", "--epochs", "2",
                                "--fine-tune-epochs", "1", "--batch-size", "64", "--resume"))
    assert resumed.handler(resumed) == 0
    assert not ray.is_initialized() and len(pd.read_parquet(run_dir / "trials.parquet")) == len(table)
    changed = parse(digits_argv(tmp_path, "--budget", "size=1/50", "--seeds", "1", "--epochs", "3", "--resume"))
    with pytest.raises(ValueError, match="config differs"):
        changed.handler(changed)
