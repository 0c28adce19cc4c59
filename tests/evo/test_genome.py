import json
import pickle

import pytest

from evo.core.genome import Individual, from_policy, genome_from_key, genome_key
from evo.core.space import SearchSpace
from hardware.policy import LayerPolicy, Policy

SPACE = SearchSpace(("conv1", "fc"))
GENOME = (3, 1, 2, 0, 4, 5)  # conv1: sparsity 0.6, w3 a4; fc: sparsity 0, w6 a8


def test_individual_is_a_plain_picklable_list():
    individual = Individual(GENOME, fitness="f")
    assert isinstance(individual, list) and individual == list(GENOME) and individual.fitness == "f"
    copy = pickle.loads(pickle.dumps(individual))  # no deap.creator class needed to unpickle
    assert copy == individual and copy.fitness == "f"


def test_channel_policy_holds_keep_ratios():
    space = SearchSpace(("conv1", "fc"), structure="channel")
    policy = space.decode((6, 0, 0, 0, 5, 5))
    assert policy["conv1"].keep_ratio == 0.25 and policy["fc"].keep_ratio == 1.0
    assert from_policy(policy, space) == (6, 0, 0, 0, 5, 5)


def test_policy_sparsity_outside_the_tables_raises():
    policy = Policy((("conv1", LayerPolicy(sparsity=0.33, weight_bits=8, activation_bits=8)),
                     ("fc", LayerPolicy(sparsity=0.0, weight_bits=8, activation_bits=8))))
    with pytest.raises(ValueError, match=r"layer 'conv1' sparsity=0.33 is not in the search space; valid choices: "
                                         r"\[0.0, 0.25"):
        from_policy(policy, SPACE)


def test_policy_round_trip():
    policy = SPACE.decode(GENOME)
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
