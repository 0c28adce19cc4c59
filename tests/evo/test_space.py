import random

import pytest

from evo.core.space import DEFAULT_BIT_CHOICES, DEFAULT_SPARSITY_CHOICES, SearchSpace
from hardware.policy import Policy

NAMES = ("conv1", "conv2", "fc1", "fc2")


def test_defaults_give_three_genes_per_layer_with_bounds_from_the_tables():
    space = SearchSpace(NAMES)
    assert space.n_genes == 12
    assert space.gene_bounds() == [(0, 7), (0, 5), (0, 5)] * 4
    assert space.pruning_choices == DEFAULT_SPARSITY_CHOICES


def test_channel_structure_uses_the_keep_ratio_table():
    space = SearchSpace(NAMES, structure="channel")
    assert space.gene_bounds()[0] == (0, 6)
    policy = space.decode((6, 0, 5) * 4)
    assert policy.structure == "channel"
    assert policy["conv1"].keep_ratio == 0.25 and policy["conv1"].sparsity == 0.0
    assert (policy["fc2"].weight_bits, policy["fc2"].activation_bits) == (2, 8)


def test_decode_maps_indices_to_values():
    space = SearchSpace(NAMES)
    policy = space.decode((0, 5, 5, 6, 2, 1, 7, 0, 0, 1, 3, 4))
    assert isinstance(policy, Policy) and policy.names == NAMES
    assert (policy["conv1"].sparsity, policy["conv1"].weight_bits, policy["conv1"].activation_bits) == (0.0, 8, 8)
    assert (policy["conv2"].sparsity, policy["conv2"].weight_bits, policy["conv2"].activation_bits) == (0.9, 4, 3)
    assert (policy["fc1"].sparsity, policy["fc1"].weight_bits, policy["fc1"].activation_bits) == (0.95, 2, 2)
    assert (policy["fc2"].sparsity, policy["fc2"].weight_bits, policy["fc2"].activation_bits) == (0.25, 5, 6)


def test_pinned_first_and_last_layers_have_only_8_bits():
    space = SearchSpace(NAMES, pin_first_last_8bit=True)
    assert space.gene_bounds() == [(0, 7), (0, 0), (0, 0)] + [(0, 7), (0, 5), (0, 5)] * 2 + [(0, 7), (0, 0), (0, 0)]
    policy = space.decode((3, 0, 0) + (0, 0, 0) * 2 + (3, 0, 0))
    assert policy["conv1"].weight_bits == policy["fc2"].activation_bits == 8
    assert policy["conv2"].weight_bits == 2


def test_uniform_genomes_cover_every_combination_once():
    space = SearchSpace(NAMES)
    uniforms = space.uniform_genomes()
    assert len(uniforms) == len(set(uniforms)) == 8 * 6 * 6
    for genome in uniforms:
        assert all(genome[i:i + 3] == genome[:3] for i in range(0, 12, 3))
    assert (7, 0, 0) * 4 in uniforms and (0, 5, 5) * 4 in uniforms


def test_uniform_genomes_keep_pinned_layers_at_8_bits():
    space = SearchSpace(NAMES, pin_first_last_8bit=True)
    uniforms = space.uniform_genomes()
    assert len(uniforms) == 8 * 6 * 6
    for genome in uniforms:
        assert genome[1:3] == genome[10:12] == (0, 0)
        assert genome[3:6] == genome[6:9] and genome[0] == genome[3] == genome[9]


def test_uniform_genomes_of_a_fully_pinned_space_are_not_repeated():
    space = SearchSpace(("only",), pin_first_last_8bit=True)
    assert space.uniform_genomes() == [(p, 0, 0) for p in range(8)]


def test_random_genome_is_within_bounds_and_reproducible():
    space = SearchSpace(NAMES, pin_first_last_8bit=True)
    genomes = [space.random_genome(random.Random(seed)) for seed in range(200)]
    for genome in genomes:
        assert all(low <= g <= high for g, (low, high) in zip(genome, space.gene_bounds()))
    assert genomes[:5] == [space.random_genome(random.Random(seed)) for seed in range(5)]
    assert len(set(genomes)) > 190


@pytest.mark.parametrize(
    "genome, message",
    [
        ((0, 0, 0) * 3, "has 9 genes"),
        ((8, 0, 0) + (0, 0, 0) * 3, "conv1/prune"),
        ((0, 0, 0) * 3 + (0, 0, -1), "fc2/activation_bits"),
        ((0, True, 0) + (0, 0, 0) * 3, "True"),
        ((0, 1.0, 0) + (0, 0, 0) * 3, "1.0"),
    ],
)
def test_decode_rejects_bad_genomes(genome, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(NAMES).decode(genome)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity_choices": (0.5, 0.25)}, "sorted ascending"),
        ({"sparsity_choices": (0.0, 0.5, 0.5)}, "unique"),
        ({"sparsity_choices": (0.0, 1.0)}, "outside"),
        ({"sparsity_choices": ()}, "non-empty"),
        ({"keep_ratio_choices": (0.5, 1.0)}, "sorted descending"),
        ({"keep_ratio_choices": (1.0, 0.0)}, "outside"),
        ({"weight_bit_choices": (1, 2)}, "valid choices"),
        ({"activation_bit_choices": (8, 4)}, "sorted ascending"),
        ({"structure": "filter"}, "valid choices"),
        ({"pin_first_last_8bit": 1}, "True or False"),
    ],
)
def test_invalid_tables_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(NAMES, **kwargs)


@pytest.mark.parametrize("names", [(), ("a", "a"), ("a", ""), "conv1"])
def test_invalid_layer_names_raise(names):
    with pytest.raises(ValueError, match="layer_names"):
        SearchSpace(names)


def test_lists_are_accepted_and_stored_as_tuples():
    space = SearchSpace(list(NAMES), weight_bit_choices=[4, 8], sparsity_choices=[0, 0.5])
    assert space.layer_names == NAMES and space.weight_bit_choices == (4, 8)
    assert space.sparsity_choices == (0.0, 0.5)
    assert space.weight_bit_choices != DEFAULT_BIT_CHOICES


def test_to_dict_round_trip_and_unknown_keys():
    space = SearchSpace(NAMES, structure="channel", keep_ratio_choices=(1.0, 0.5), pin_first_last_8bit=True)
    assert SearchSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ValueError, match="unknown keys"):
        SearchSpace.from_dict({**space.to_dict(), "bits": [4]})


def test_fixed_pruning_genes_have_one_choice_and_no_operator_moves_them():
    from evo.core.genome import from_policy
    from evo.core.variation import crossover, mutate

    space = SearchSpace(("conv1", "conv2", "fc1", "fc2"), structure="channel", fixed_pruning=["fc2"])
    assert space.gene_tables[9] == (1.0,) and space.gene_bounds()[9] == (0, 0)
    assert space.free_genes() == [i for i in range(12) if i != 9]
    rng = random.Random(0)
    genomes = [space.random_genome(rng) for _ in range(20)]
    for genome in genomes:
        for _ in range(20):
            genome = mutate(genome, space, rng, indpb=1.0)
            assert genome[9] == 0
    assert all(child[9] == 0 for a, b in zip(genomes, genomes[1:]) for child in crossover(a, b, rng))
    # every uniform policy once: 7 keep ratios x 6 x 6 bit widths, fc2's keep ratio not multiplying them
    assert len(space.uniform_genomes()) == 7 * 6 * 6
    # a policy file may give the classifier any keep ratio: it is never applied
    policy = Policy.uniform(list(space.layer_names), weight_bits=4, activation_bits=4, keep_ratio=0.5,
                            structure="channel")
    assert from_policy(policy, space)[9] == 0 and from_policy(policy, space)[0] == 4
    assert SearchSpace.from_dict(space.to_dict()) == space and space.to_dict()["fixed_pruning"] == ["fc2"]
    with pytest.raises(ValueError, match=r"fixed_pruning=\['fc3'\] must be a sequence of layer names"):
        SearchSpace(("fc1", "fc2"), fixed_pruning=["fc3"])


def test_channel_search_space_leaves_unapplied_keep_ratios_out(tmp_path):
    """LeNet-5's classifier keeps its 10 classes: its keep-ratio gene is fixed, the others free."""
    from evo.runs.config import SearchConfig
    from evo.runs.prepare import build_space
    from hardware.profiler import profile_model
    from trainables.models import create_model

    specs = profile_model(create_model("lenet5", in_channels=1, num_classes=10, image_shape=(1, 28, 28)), (1, 28, 28))
    channel = build_space(SearchConfig(structure="channel", storage=str(tmp_path)), specs)
    assert channel.fixed_pruning == ("fc2",)
    assert build_space(SearchConfig(storage=str(tmp_path)), specs).fixed_pruning == ()  # sparsity applies everywhere
