"""The search baselines without starting Ray: the repaired random sampler, the Optuna searcher
driven through suggest/on_trial_complete as Tune drives it, method checks and CLI wiring.
The real runs through Ray are in tests/evo/test_report.py (compared there)."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import random
import sys

import pytest
from ray import tune

from evo.methods.optuna_search import AffordableOptuna
from evo.core.trial import trial_config
from evo.methods import create_method
from evo.methods.random_search import repaired_random_sampler
from evo.core.genome import genome_from_key
from evo.core.space import SearchSpace

LAYERS = ("conv1", "conv2", "fc1")
WEIGHTS = {"conv1": 500, "conv2": 25_000, "fc1": 40_000}
SPACE = SearchSpace(layer_names=LAYERS)
LIMIT = sum(WEIGHTS.values()) * 4.0  # BOPs-like: uniform W2A2 fits dense, W8A8 needs 75% sparsity


def cost(genome) -> float:
    policy = SPACE.decode(genome)
    return sum(WEIGHTS[n] * (1 - lp.sparsity) * lp.weight_bits * lp.activation_bits for n, lp in policy.layers)


def fake_accuracy(policy: dict) -> float:
    # deterministic: more bits and less sparsity -> more accurate
    return sum(lp["weight_bits"] * 0.01 + lp["activation_bits"] * 0.01 - lp["sparsity"] * 0.05
               for lp in policy["layers"].values())


# -- random search --------------------------------------------------------------------------
def test_random_samples_are_repaired_new_and_seeded():
    draw = repaired_random_sampler(SPACE, cost, LIMIT, random.Random(3))
    items = [draw(None) for _ in range(40)]
    genomes = [genome_from_key(item["genome"]) for item in items]
    assert all(cost(g) <= LIMIT for g in genomes)
    assert len(set(genomes)) == 40
    assert items[0]["policy"] == SPACE.decode(genomes[0]).to_dict() and items[0]["phase"] == "search"
    again = repaired_random_sampler(SPACE, cost, LIMIT, random.Random(3))
    assert [again(None) for _ in range(40)] == items
    # unrepaired draws would break the budget often: the repair is doing work
    rng = random.Random(3)
    assert sum(cost(SPACE.random_genome(rng)) > LIMIT for _ in range(40)) >= 10


def test_tune_deep_copies_of_the_sample_from_domain_share_one_rng():
    # BasicVariantGenerator deep-copies the spec for every sample; the closure must survive that
    domain = tune.sample_from(repaired_random_sampler(SPACE, cost, LIMIT, random.Random(0)))
    keys = [copy.deepcopy(domain).func(None)["genome"] for _ in range(10)]
    assert len(set(keys)) == 10


# -- Optuna ---------------------------------------------------------------------------------
needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None,
                                  reason="optuna is an optional extra: pip install 'evo[optuna]'")


def drive(searcher, trials: int, slots: int = 2, fail=lambda i: False) -> list[tuple]:
    """Tune's loop: keep ``slots`` trials running, complete the oldest, until ``trials`` started."""
    live, started = [], []
    while len(started) < trials or live:
        if len(started) < trials and len(live) < slots:
            trial_id = f"t{len(started)}"
            config = searcher.suggest(trial_id)["item"]
            live.append((trial_id, config))
            started.append(genome_from_key(config["genome"]))
            continue
        trial_id, config = live.pop(0)
        if fail(trial_id):
            searcher.on_trial_complete(trial_id, {"accuracy": float("nan"), "failed": 1}, error=False)
        else:
            searcher.on_trial_complete(trial_id, {"accuracy": fake_accuracy(config["policy"])})
    return started


@needs_optuna
def test_optuna_trains_only_new_genomes_within_budget_and_tells_optuna_every_ask():
    import optuna

    searcher = AffordableOptuna(SPACE, cost, LIMIT, population=6, seed=0)
    started = drive(searcher, trials=30)
    assert len(set(started)) == 30 and all(cost(g) <= LIMIT for g in started)
    study = searcher._inner._ot_study
    states = [t.state for t in study.trials]
    assert len(states) == 30 + searcher.over_budget + searcher.repeats
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(states), "every asked point was told"
    assert searcher.over_budget > 0  # the tight budget made NSGA-II's random start propose over-budget genomes
    told_infeasible = [t for t in study.trials if t.values[0] == 0.0]
    assert len(told_infeasible) == searcher.over_budget
    assert all(t.system_attrs["constraints"][0] > 0 for t in told_infeasible)
    assert all(t.system_attrs["constraints"][0] <= 0 for t in study.trials if t.values[0] > 0)


@needs_optuna
def test_optuna_is_seeded_and_a_failed_trial_is_told_as_failed():
    import optuna

    first = drive(AffordableOptuna(SPACE, cost, LIMIT, population=6, seed=5), trials=12)
    second = drive(AffordableOptuna(SPACE, cost, LIMIT, population=6, seed=5), trials=12)
    assert first == second
    searcher = AffordableOptuna(SPACE, cost, LIMIT, population=6, seed=5)
    drive(searcher, trials=6, fail=lambda trial_id: trial_id == "t1")
    failed = [t for t in searcher._inner._ot_study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].params  # the asked point, told back as failed


@needs_optuna
def test_optuna_searcher_pickles_as_tune_does_and_its_copy_refuses_to_resume(tmp_path):
    import ray.cloudpickle  # what Tune's TunerInternal writes tuner.pkl with

    searcher = AffordableOptuna(SPACE, cost, LIMIT, population=6, seed=3)
    drive(searcher, trials=4)
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(searcher))  # Optuna 5.1's sampler holds a thread lock
    assert copy._told == searcher._told and copy.over_budget == searcher.over_budget
    with pytest.raises(ValueError, match="does not resume"):
        copy.restore(str(tmp_path / "searcher.pkl"))
    assert len(set(drive(searcher, trials=8))) == 8  # pickling left the live searcher whole


# -- method checks and the command line ----------------------------------------------------
def test_unknown_method_and_missing_optuna_name_the_fix(monkeypatch):
    with pytest.raises(ValueError, match=r"'grid' is unknown; valid choices: \['evo', 'uniform', 'random', 'optuna', 'admm'\]"):
        create_method("grid")
    monkeypatch.setitem(sys.modules, "optuna", None)  # what find_spec reports for an absent package
    with pytest.raises(ValueError, match=r"pip install 'evo\[optuna\]'"):
        create_method("optuna")


def test_baseline_and_compare_commands_dispatch_to_their_handlers():
    from evo.cli import build_parser
    from evo.cli.baseline import cmd_baseline
    from evo.cli.compare import cmd_compare

    parser = build_parser()
    args = parser.parse_args(["baseline", "random", "--preset", "smoke", "--population", "6"])
    assert args.handler is cmd_baseline and args.baseline_method == "random" and args.population == 6
    assert parser.parse_args(["baseline", "admm", "--model", "mlp", "--dataset", "digits", "--budget",
                              "size=1/50"]).handler.__name__ == "cmd_admm"
    args = parser.parse_args(["compare", "runs/a", "runs/b", "--out", "report"])
    assert args.handler is cmd_compare and args.run_dirs == ["runs/a", "runs/b"]
    assert parser.parse_args(["baseline", "optuna"]).baseline_method == "optuna"


def test_baseline_config_takes_the_search_flags_and_its_own_folder_name():
    from evo.cli import build_parser
    from evo.cli.baseline import baseline_config

    parser = build_parser()
    cfg = baseline_config(parser.parse_args(["baseline", "random", "--preset", "smoke", "--fine-tune-steps", "7"]))
    assert (cfg.name, cfg.model, cfg.population, cfg.generations, cfg.fine_tune_steps) == ("smoke-random", "mlp", 8, 3, 7)
    named = baseline_config(parser.parse_args(["baseline", "uniform", "--preset", "smoke", "--name", "u"]))
    assert named.name == "u"


def test_resume_and_bad_values_fail_before_ray(tmp_path):
    import ray

    from evo.cli import build_parser

    parser = build_parser()
    storage = str(tmp_path / "runs")
    args = parser.parse_args(["baseline", "uniform", "--preset", "smoke", "--resume", "--storage", storage])
    with pytest.raises(ValueError, match="does not resume"):
        args.handler(args)
    args = parser.parse_args(["baseline", "random", "--preset", "smoke", "--budget", "bops=1e-9", "--storage", storage])
    with pytest.raises(ValueError, match="cannot be met"):
        args.handler(args)
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_trial_config_is_what_policy_trial_reads():
    genome = (1, 2, 3) * len(LAYERS)
    item = trial_config(genome, SPACE.decode(genome).to_dict(), phase="search")
    assert genome_from_key(item["genome"]) == genome and item["policy"]["layers"]["conv2"]["weight_bits"] == 4
