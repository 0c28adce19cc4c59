import json
import pickle

import pytest

from evo.core.genome import (
    Individual,
    from_config,
    from_individual,
    from_policy,
    genome_from_key,
    genome_key,
    to_config,
    to_individual,
    to_policy,
)
from evo.core.space import SearchSpace
from hardware.policy import LayerPolicy, Policy

SPACE = SearchSpace(("conv1", "fc"))
GENOME = (3, 1, 2, 0, 4, 5)  # conv1: sparsity 0.6, w3 a4; fc: sparsity 0, w6 a8


def test_individual_round_trip_is_a_plain_picklable_list():
    individual = to_individual(GENOME, fitness="f")
    assert isinstance(individual, list) and isinstance(individual, Individual)
    assert individual == list(GENOME) and individual.fitness == "f"
    assert from_individual(individual) == GENOME and isinstance(from_individual(individual), tuple)
    copy = pickle.loads(pickle.dumps(individual))  # no deap.creator class needed to unpickle
    assert copy == individual and copy.fitness == "f"


def test_config_holds_values_under_layer_keys():
    assert to_config(GENOME, SPACE) == {
        "conv1/prune": 0.6, "conv1/weight_bits": 3, "conv1/activation_bits": 4,
        "fc/prune": 0.0, "fc/weight_bits": 6, "fc/activation_bits": 8,
    }


def test_config_round_trip_through_json_ignores_other_keys():
    config = json.loads(json.dumps({**to_config(GENOME, SPACE), "seed": 3, "generation": 1}))
    assert from_config(config, SPACE) == GENOME


def test_channel_config_holds_keep_ratios():
    space = SearchSpace(("conv1", "fc"), structure="channel")
    config = to_config((6, 0, 0, 0, 5, 5), space)
    assert config["conv1/prune"] == 0.25 and config["fc/prune"] == 1.0
    assert from_config(config, space) == (6, 0, 0, 0, 5, 5)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("conv1/prune", 0.33, r"conv1/prune=0.33 is not in the search space; valid choices: \[0.0, 0.25"),
        ("fc/weight_bits", 7, r"fc/weight_bits=7 is not in the search space; valid choices: \[2, 3, 4, 5, 6, 8\]"),
        ("fc/activation_bits", "8", "is not a number"),
        ("fc/activation_bits", float("nan"), "is not a number"),
    ],
)
def test_config_value_outside_the_tables_raises(key, value, message):
    config = {**to_config(GENOME, SPACE), key: value}
    with pytest.raises(ValueError, match=message):
        from_config(config, SPACE)


def test_bool_is_not_a_keep_ratio_of_one():
    space = SearchSpace(("conv1",), structure="channel")
    with pytest.raises(ValueError, match="True"):
        from_config({"conv1/prune": True, "conv1/weight_bits": 8, "conv1/activation_bits": 8}, space)


def test_config_missing_a_key_raises():
    config = to_config(GENOME, SPACE)
    del config["fc/prune"]
    with pytest.raises(ValueError, match="'fc/prune'"):
        from_config(config, SPACE)


def test_policy_round_trip():
    policy = to_policy(GENOME, SPACE)
    assert policy["conv1"] == LayerPolicy(sparsity=0.6, weight_bits=3, activation_bits=4)
    assert policy["fc"] == LayerPolicy(sparsity=0.0, weight_bits=6, activation_bits=8)
    assert from_policy(policy, SPACE) == GENOME
    assert from_policy(Policy.from_dict(json.loads(policy.to_json())), SPACE) == GENOME


def test_policy_value_outside_the_tables_raises():
    policy = Policy.uniform(("conv1", "fc"), weight_bits=7, activation_bits=8)
    with pytest.raises(ValueError, match=r"layer 'conv1' weight_bits=7 is not in the search space"):
        from_policy(policy, SPACE)
    with pytest.raises(ValueError, match=r"activation_bits=4 .*valid choices: \[8\]"):
        from_policy(Policy.uniform(("conv1", "fc"), weight_bits=8, activation_bits=4),
                    SearchSpace(("conv1", "fc"), pin_first_last_8bit=True))


def test_policy_of_another_model_or_structure_raises():
    with pytest.raises(ValueError, match="missing layers"):
        from_policy(Policy.uniform(("conv1",), weight_bits=8, activation_bits=8), SPACE)
    channel = Policy.uniform(("conv1", "fc"), weight_bits=8, activation_bits=8, structure="channel")
    with pytest.raises(ValueError, match="structure='channel'"):
        from_policy(channel, SPACE)


def test_genome_key_is_short_and_reversible():
    assert genome_key(GENOME) == "3.1.2|0.4.5"
    assert genome_key([12, 0, 1]) == "12.0.1"
    assert genome_from_key("3.1.2|0.4.5") == GENOME


@pytest.mark.parametrize("genome", [(), (1, 2), (1, 2, 3, 4)])
def test_genome_key_needs_whole_layers(genome):
    with pytest.raises(ValueError, match="3 genes per layer"):
        genome_key(genome)


@pytest.mark.parametrize("key", ["", "1.2", "1.2.x", "1.2.3|4", "1.-2.3", None])
def test_bad_genome_key_raises(key):
    with pytest.raises(ValueError, match="genome key"):
        genome_from_key(key)
