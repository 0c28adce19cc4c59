"""Real Ray: N concurrency slots run N trials at once through the searcher, and a policy trial
whose evaluation raises is reported as failed with its message while the others finish."""

from __future__ import annotations

import sys
import time

import pytest
import ray
import ray.cloudpickle
from ray import tune

from evo.core.population import Population
from evo.tune.searcher import EvoSearcher
from evo.core.space import SearchSpace
from evo.tune.tuner import build_tuner
from evo.tune.cluster import start_ray

pytestmark = pytest.mark.ray
# Ray workers cannot import this test module by name: ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_ray():
    start_ray(None, num_cpus=2, log=lambda *_: None)
    yield
    ray.shutdown()


def sleepy_trial(config):
    started = time.time()
    time.sleep(1.5)
    tune.report({"accuracy": 0.5, "started": started, "ended": time.time()})


class Times:
    def __init__(self):
        self.spans = []

    def on_evaluated(self, trial_id, candidate, result, result_outcome):
        self.spans.append((result["started"], result["ended"]))

    def on_generation(self, stats):
        pass


def test_two_slots_run_two_trials_at_once(local_ray, tmp_path):
    # four genomes in all (weight bits 4 or 8 per layer), two of them uniform: generation 0 is all four
    space = SearchSpace(layer_names=("a", "b"), sparsity_choices=(0.0,), weight_bit_choices=(4, 8),
                        activation_bit_choices=(8,))
    pop = Population(space=space, cost_fn=lambda g: 1.0, limit=2.0, population_size=4, generations=1, seed=0)
    times = Times()
    searcher = EvoSearcher(pop, decode=space.decode, cost_fn=lambda g: 1.0, listener=times)
    trainable = tune.with_resources(sleepy_trial, {"cpu": 1})
    tuner = build_tuner(trainable, run_dir=tmp_path, experiment="slots", search_alg=searcher, max_concurrent=2,
                        max_failures=0, verbose=0)
    tuner.fit()
    assert len(times.spans) == 4
    # sweep: the most trials alive at any one moment
    events = sorted([(s, 1) for s, _ in times.spans] + [(e, -1) for _, e in times.spans])
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    assert peak == 2, times.spans


def test_failed_policy_trial_is_reported_with_its_error(local_ray, tmp_path):
    from hardware.profiler import profile_model
    from hardware.specs import specs_to_json
    from trainables.data import load_dataset
    from trainables.models import create_model
    from trainables.policy_trial import TrialSettings
    from evo.tune.tuner import policy_trainable

    splits = load_dataset("digits")
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=splits.image_shape)
    specs = profile_model(model, splits.image_shape)
    settings = TrialSettings(model_ref={"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 10, "image_shape": [1, 8, 8]}, target="bitserial",
                             budget_metric="bops", budget_limit=1e12, fine_tune_steps=5, final_steps=5,
                             batch_size=32, lr=0.01, seed=0)
    good = {"layers": {s.name: {"weight_bits": 4, "activation_bits": 4} for s in specs}}
    bad = {"layers": {"no_such_layer": {"weight_bits": 4}}}
    trainable = policy_trainable(data=splits, base_state=model.state_dict(), specs_json=specs_to_json(specs),
                                 settings=settings, cpus=1, gpus=0)
    tuner = build_tuner(trainable, run_dir=tmp_path, experiment="fail", param_space={
        "item": tune.grid_search([{"phase": "search", "policy": good}, {"phase": "search", "policy": bad}])},
        max_concurrent=2, max_failures=0, verbose=0, num_samples=1)
    results = {r.config["item"]["policy"] is bad or "no_such_layer" in r.config["item"]["policy"]["layers"]: r.metrics
               for r in tuner.fit()}
    assert results[False]["failed"] == 0 and 0.0 <= results[False]["accuracy"] <= 1.0
    assert results[True]["failed"] == 1
    assert "no_such_layer" in results[True]["error"] and "ValueError" in results[True]["error"]
