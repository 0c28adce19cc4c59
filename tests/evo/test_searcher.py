"""The Tune Searcher adapter driven directly through suggest/on_trial_complete (Ray not started)."""

from __future__ import annotations

import json
import math

import pytest
from ray.tune.search import Searcher

from evo.core.population import Population
from evo.tune.searcher import EvoSearcher
from evo.core.trial import outcome
from evo.core.space import SearchSpace

LAYERS = ("conv1", "conv2", "fc1")
WEIGHTS = {"conv1": 500, "conv2": 25_000, "fc1": 400_000}


def make(seed=0, listener=None, population=6, generations=3):
    space = SearchSpace(layer_names=LAYERS)

    def cost(genome):
        policy = space.decode(genome)
        return sum(WEIGHTS[n] * (1 - lp.sparsity) * lp.weight_bits * lp.activation_bits for n, lp in policy.layers)

    limit = sum(WEIGHTS.values()) * 8.0
    pop = Population(space=space, cost_fn=cost, limit=limit, population_size=population, generations=generations,
                     seed=seed)
    return EvoSearcher(pop, decode=space.decode, cost_fn=cost, listener=listener), space, cost


def fake_accuracy(policy_dict):
    # deterministic: more bits and less sparsity -> more accurate
    layers = policy_dict["layers"].values()
    return sum(lp["weight_bits"] * 0.01 + lp["activation_bits"] * 0.01 - lp["sparsity"] * 0.05 for lp in layers)


class Recorder:
    def __init__(self):
        self.evaluated, self.generations = [], []

    def on_evaluated(self, trial_id, candidate, result, result_outcome):
        self.evaluated.append((trial_id, candidate.genome, result_outcome.failed, result_outcome.error))

    def on_generation(self, stats):
        self.generations.append(stats)


def drive(searcher, max_trials=10_000, fail=lambda i: False):
    """Fill every slot the searcher offers, complete the oldest, repeat — as Tune does."""
    live, n, configs = [], 0, []
    while n < max_trials:
        config = searcher.suggest(f"t{n}")
        if config == Searcher.FINISHED:
            break
        if config is None:
            assert live, "searcher waits although nothing is running"
            trial_id, cfg = live.pop(0)
            if fail(trial_id):
                searcher.on_trial_complete(trial_id, error=True)
            else:
                searcher.on_trial_complete(trial_id, result={"accuracy": fake_accuracy(cfg["policy"])})
            continue
        configs.append(config)
        live.append((f"t{n}", config))
        n += 1
    for trial_id, cfg in live:
        searcher.on_trial_complete(trial_id, result={"accuracy": fake_accuracy(cfg["policy"])})
    return configs


def test_suggest_returns_policy_configs_and_finishes():
    rec = Recorder()
    searcher, space, cost = make(listener=rec)
    configs = drive(searcher)
    assert searcher.suggest("late") == Searcher.FINISHED
    assert searcher.population.is_finished
    assert len(rec.generations) == 3
    keys = [c["genome"] for c in configs]
    assert len(keys) == len(set(keys)), "a genome was handed to two trials"
    for c in configs:
        assert set(c["policy"]["layers"]) == set(LAYERS)
        assert c["phase"] == "search" and c["generation"] in (0, 1, 2)
    # every trial the searcher handed out was recorded, none over budget
    assert len(rec.evaluated) == len(configs)
    assert all(cost(g) <= searcher.population.limit for _, g, _, _ in rec.evaluated)


def test_errors_and_nan_count_as_failed_and_the_search_goes_on():
    rec = Recorder()
    searcher, *_ = make(listener=rec)
    drive(searcher, fail=lambda trial_id: trial_id in ("t1", "t4"))
    failed = {t: e for t, _, f, e in rec.evaluated if f}
    assert set(failed) == {"t1", "t4"}
    assert "worker or node failure" in failed["t1"]
    assert searcher.population.is_finished
    history = searcher.population.history
    assert sum(r["failed"] for r in history) == 2
    assert all(r["violation"] == math.inf for r in history if r["failed"])


@pytest.mark.parametrize("result,error,expected", [
    (None, True, True),
    ({"accuracy": float("nan")}, False, True),
    ({"accuracy": 0.5, "failed": 1, "error": "ValueError: boom"}, False, True),
    ({"accuracy": 0.5}, False, False),
    ({"loss": 1.0}, False, True),
])
def test_outcome(result, error, expected):
    failed, message, accuracy = outcome(result, error)
    assert failed is expected
    assert (message != "") is expected
    assert math.isnan(accuracy) is expected


def test_unknown_trial_ids_are_ignored():
    searcher, *_ = make()
    searcher.on_trial_complete("never-suggested", result={"accuracy": 1.0})
    assert searcher.population.history == []


def test_save_restore_mid_generation_continues_like_an_uninterrupted_run(tmp_path):
    reference, *_ = make(seed=3)
    uninterrupted = [c["genome"] for c in drive(reference)]

    searcher, *_ = make(seed=3)
    first = [searcher.suggest(f"a{i}") for i in range(4)]  # four in flight
    searcher.on_trial_complete("a0", result={"accuracy": fake_accuracy(first[0]["policy"])})
    searcher.on_trial_complete("a1", result={"accuracy": fake_accuracy(first[1]["policy"])})
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    json.loads(path.read_text())  # plain JSON, no pickles of DEAP objects

    restored, *_ = make(seed=99)  # the state, not the constructor's seed, decides what follows
    restored.restore(str(path))
    rest = drive(restored)
    resumed = [c["genome"] for c in first[:2]] + [c["genome"] for c in rest]
    # the two in-flight genomes are handed out again first; the told ones never
    assert [c["genome"] for c in rest[:2]] == [c["genome"] for c in first[2:4]]
    assert resumed == uninterrupted


def test_pickling_leaves_the_driver_side_listener_behind():
    from ray import cloudpickle as pickle  # what Tune uses

    rec = Recorder()
    searcher, *_ = make(listener=rec)
    searcher.suggest("t0")
    clone = pickle.loads(pickle.dumps(searcher))
    assert clone._listener is None and searcher._listener is rec
    assert clone.population.state() == searcher.population.state()
