"""Sensitivity-guided generation-0 policies: the greedy knapsack walk over the real genome space."""

import pytest

from evo.core.repair import expanding_moves
from evo.core.sensitivity import Sensitivity, filled_genome, guided_genomes, least_compressed_genome
from evo.core.space import SearchSpace

SPACE = SearchSpace(("a", "b"), sparsity_choices=(0.0, 0.5, 0.75), weight_bit_choices=(2, 4, 8),
                    activation_bit_choices=(4, 8))


def cost(genome):
    """BOPs-like: 100 weights in each layer, density x weight bits x activation bits."""
    tables = SPACE.gene_tables
    return sum(100 * (1 - tables[3 * i][genome[3 * i]]) * tables[3 * i + 1][genome[3 * i + 1]]
               * tables[3 * i + 2][genome[3 * i + 2]] for i in range(2))


def table(weight_scale, activation_scale):
    """Distortion grows with pruning and with fewer bits; ``*_scale`` says how sensitive the layer is."""
    prune_damage, bit_damage = (0.0, 1.0, 3.0), {2: 4.0, 4: 1.0, 8: 0.0}
    weight = tuple(tuple(weight_scale * (p + bit_damage[w]) for w in (2, 4, 8)) for p in prune_damage)
    return weight, tuple(activation_scale * {4: 1.0, 8: 0.0}[a] for a in (4, 8))


def sensitivity(a, b):
    (wa, aa), (wb, ab) = table(*a), table(*b)
    return Sensitivity((wa, wb), (aa, ab))


def test_the_walk_compresses_the_insensitive_layer_and_fits_each_fraction():
    limit = 0.25 * cost(least_compressed_genome(SPACE))  # 3,200 of 12,800
    guided = guided_genomes(SPACE, cost, limit, sensitivity((10.0, 10.0), (0.1, 0.1)), fractions=(1.0, 0.5))
    assert len(guided) == 2 and cost(guided[0]) <= limit and cost(guided[1]) <= 0.5 * limit
    sensitive, insensitive = guided[0][:3], guided[0][3:]
    # the sensitive layer a keeps at least as much precision and density as b, and more of one
    assert sensitive[0] <= insensitive[0] and sensitive[1] >= insensitive[1] and sensitive[2] >= insensitive[2]
    assert sensitive != insensitive
    # swap the sensitivities: the walk swaps its choices
    swapped = guided_genomes(SPACE, cost, limit, sensitivity((0.1, 0.1), (10.0, 10.0)), fractions=(1.0, 0.5))
    assert swapped[0] == guided[0][3:] + guided[0][:3]


def test_the_default_fractions_put_the_first_guided_genomes_at_both_ends_of_the_cost_axis():
    # generation 0 takes the first few (evo.core.initial.GUIDED_SHARE: 6 of 10): the first is the walk's
    # genome for the whole budget, and among the first six one lies at the cheap end of it, so the
    # first front spans the cost axis
    limit = 0.5 * cost(least_compressed_genome(SPACE))
    s = sensitivity((10.0, 1.0), (0.1, 1.0))
    guided = guided_genomes(SPACE, cost, limit, s)
    fractions = [cost(g) / limit for g in guided[:6]]
    assert len(guided) >= 2 and guided[0] == guided_genomes(SPACE, cost, limit, s, fractions=(1.0,))[0]
    assert all(f <= 1 for f in fractions) and min(fractions) <= 0.15, fractions


def test_distortion_is_the_sum_of_the_layers_entries():
    s = sensitivity((1.0, 2.0), (3.0, 4.0))
    # a: pruning 0.5 (1.0), 4 bits (+1.0) -> 2.0; activation 4 bits 2.0 -> 4.0
    # b: no pruning, 2 bits -> 3 * 4.0 = 12.0; activation 8 bits -> 0
    assert s.distortion((1, 1, 0, 0, 0, 1)) == pytest.approx(2.0 + 2.0 + 12.0)


def test_a_budget_the_walk_cannot_reach_gives_no_genome_and_bad_tables_are_named():
    s = sensitivity((1.0, 1.0), (1.0, 1.0))
    assert guided_genomes(SPACE, cost, 1.0, s) == []  # cheaper than the cheapest genome
    with pytest.raises(ValueError, match=r"layer 'b': sensitivity tables of shape"):
        Sensitivity(s.weight[:1] + (s.weight[1][:2],), s.activation).check(SPACE)
    with pytest.raises(ValueError, match="sensitivity values must be finite"):
        Sensitivity(s.weight, (s.activation[0], (float("nan"), 0.0))).check(SPACE)
    with pytest.raises(ValueError, match=r"fractions=\[1.5\]"):
        guided_genomes(SPACE, cost, 3200.0, s, fractions=(1.5,))


def brute_force_fill(genome, limit, s):
    """Every genome at least as little compressed as ``genome`` in each gene and within ``limit``:
    the least predicted distortion any of them reaches."""
    import itertools

    ranges = []
    for position, (index, (low, high)) in enumerate(zip(genome, SPACE.gene_bounds())):
        ranges.append(range(low, index + 1) if position % 3 == 0 else range(index, high + 1))
    return min(s.distortion(g) for g in itertools.product(*ranges) if cost(g) <= limit)


def test_fill_uses_the_budget_and_spends_it_on_the_sensitive_layer():
    s = sensitivity((10.0, 10.0), (0.1, 0.1))
    limit = 0.3 * cost(least_compressed_genome(SPACE))  # 3,840
    start = (2, 0, 0, 2, 0, 0)  # both layers at 75 % sparsity, 2-bit weights, 4-bit inputs: 400
    filled = filled_genome(start, SPACE, cost, limit, s)
    assert cost(filled) <= limit and s.distortion(filled) < s.distortion(start)
    # no single step less compression fits any more, or none lowers the predicted distortion
    assert all(cost(m) > limit or s.distortion(m) >= s.distortion(filled) for m in expanding_moves(filled, SPACE))
    # the sensitive layer a got at least as much as b, and more of something
    assert filled[0] <= filled[3] and filled[1] >= filled[4] and filled[:3] != filled[3:]
    # the greedy fill lands close to the best any growth of ``start`` could reach within the limit
    best = brute_force_fill(start, limit, s)
    assert s.distortion(filled) <= best + 0.25 * (s.distortion(start) - best)


def test_fill_keeps_a_genome_with_no_room_and_refuses_one_over_the_budget():
    s = sensitivity((1.0, 1.0), (1.0, 1.0))
    least = least_compressed_genome(SPACE)
    assert filled_genome(least, SPACE, cost, cost(least), s) == least  # nothing less compressed exists
    cheap = (2, 0, 0, 2, 0, 0)
    assert filled_genome(cheap, SPACE, cost, cost(cheap), s) == cheap  # every step costs BOPs: no room ...
    flat = Sensitivity(tuple(tuple(tuple(0.0 for _ in row) for row in layer) for layer in s.weight),
                       tuple(tuple(0.0 for _ in layer) for layer in s.activation))
    assert filled_genome(cheap, SPACE, cost, 10 * cost(cheap), flat) == cheap  # ... but nothing predicts a gain
    with pytest.raises(ValueError, match=r"over the limit"):
        filled_genome(least, SPACE, cost, 100.0, s)


def test_a_step_that_adds_no_cost_is_taken_first():
    """Under a cost that ignores activation bits (a size budget), the inputs go to their widest bits."""
    def weights_only(genome):
        tables = SPACE.gene_tables
        return sum(100 * (1 - tables[3 * i][genome[3 * i]]) * tables[3 * i + 1][genome[3 * i + 1]] for i in range(2))

    cheap = (2, 0, 0, 2, 0, 0)
    filled = filled_genome(cheap, SPACE, weights_only, weights_only(cheap), sensitivity((1.0, 1.0), (1.0, 1.0)))
    assert filled == (2, 0, 1, 2, 0, 1)
