"""The table-lookup cost equals hardware.cost's full pricing for every metric."""

from __future__ import annotations

import random

import pytest

from evo.core.cost_table import make_cost_fn
from evo.core.space import SearchSpace
from hardware.cost import COST_METRICS, total_costs
from hardware.specs import LayerSpec
from hardware.targets import TARGET_NAMES, load_target

LENET = [
    LayerSpec("conv1", "conv", 1, 20, kernel=(5, 5), input_hw=(28, 28), output_hw=(24, 24), has_bias=True),
    LayerSpec("conv2", "conv", 20, 50, kernel=(5, 5), input_hw=(12, 12), output_hw=(8, 8), has_bias=True,
              producer="conv1"),
    LayerSpec("fc1", "linear", 800, 500, has_bias=True, producer="conv2", input_channel_multiplier=16),
    LayerSpec("fc2", "linear", 500, 10, has_bias=True, producer="fc1", prunable_outputs=False),
]


@pytest.mark.parametrize("metric", COST_METRICS)
@pytest.mark.parametrize("target_name", TARGET_NAMES)
@pytest.mark.parametrize("pin", [False, True])
def test_lookup_matches_full_pricing(metric, target_name, pin):
    space = SearchSpace(layer_names=tuple(s.name for s in LENET), pin_first_last_8bit=pin)
    target = load_target(target_name)
    cost = make_cost_fn(space, LENET, target, metric)
    rng = random.Random(7)
    for genome in [space.random_genome(rng) for _ in range(40)] + space.uniform_genomes()[:20]:
        exact = total_costs(LENET, space.decode(genome), target)[metric]
        assert cost(genome) == pytest.approx(exact, rel=1e-12), genome


def test_channel_structure_prices_exactly():
    space = SearchSpace(layer_names=tuple(s.name for s in LENET), structure="channel")
    target = load_target("bitserial")
    cost = make_cost_fn(space, LENET, target, "bops")
    genome = space.random_genome(random.Random(1))
    assert cost(genome) == total_costs(LENET, space.decode(genome), target)["bops"]
