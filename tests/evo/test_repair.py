import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evo.core.repair import check_reachable, cheapest_genome, compressing_moves, repair
from evo.core.initial import initial_genomes, least_pruned_uniforms
from evo.core.space import SearchSpace


def additive_cost(space, weights):
    """BOPs-like cost: sum over layers of weight * density * weight bits * activation bits,
    density = 1 - sparsity, or the keep ratio for channel pruning."""
    tables = space.gene_tables
    density = (lambda s: 1 - s) if space.structure == "unstructured" else (lambda keep: keep)

    def cost(genome):
        return sum(
            w * density(tables[3 * i][genome[3 * i]]) * tables[3 * i + 1][genome[3 * i + 1]]
            * tables[3 * i + 2][genome[3 * i + 2]]
            for i, w in enumerate(weights)
        )

    return cost


TINY = SearchSpace(("a", "b"), sparsity_choices=(0.0, 0.5), weight_bit_choices=(4, 8), activation_bit_choices=(4, 8))
TINY_COST = additive_cost(TINY, (1, 10))  # (0, 1, 1) * 2 costs 64 + 640 = 704


def test_cheapest_genome_has_max_pruning_and_fewest_bits():
    assert cheapest_genome(SearchSpace(("a", "b"))) == (7, 0, 0, 7, 0, 0)
    assert cheapest_genome(SearchSpace(("a", "b"), structure="channel", pin_first_last_8bit=True)) == (6, 0, 0) * 2


def test_compressing_moves_step_pruning_up_and_bits_down():
    assert list(compressing_moves((0, 1, 0, 1, 1, 1), TINY)) == [
        (1, 1, 0, 1, 1, 1), (0, 0, 0, 1, 1, 1), (0, 1, 0, 1, 0, 1), (0, 1, 0, 1, 1, 0)]


def test_a_genome_within_budget_is_returned_unchanged():
    assert repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, 704) == (0, 1, 1, 0, 1, 1)


def test_repair_takes_the_steepest_move_and_breaks_ties_by_gene_order():
    # b's three moves each save 320 (a's save 32): a tie, so b's pruning gene (the first) moves
    assert repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, 500) == (0, 1, 1, 1, 1, 1)  # cost 384
    # from there b's bit moves save 160, b's pruning is at its bound, a's moves save 32
    assert repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, 300) == (0, 1, 1, 1, 0, 1)  # cost 224


def test_unreachable_budget_returns_none():
    cheapest = TINY_COST(cheapest_genome(TINY))  # 0.5*16 + 10*0.5*16 = 88
    assert cheapest == 88
    assert repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, 87.9) is None
    assert repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, 88) == cheapest_genome(TINY)


@settings(max_examples=150, deadline=None, derandomize=True)  # seeded: reproducible
@given(
    seed=st.integers(0, 2**32 - 1),
    n_layers=st.integers(1, 6),
    structure=st.sampled_from(["unstructured", "channel"]),
    limit_fraction=st.floats(0.0, 1.2),
)
def test_repair_never_exceeds_the_budget(seed, n_layers, structure, limit_fraction):
    rng = random.Random(seed)
    space = SearchSpace(tuple(f"l{i}" for i in range(n_layers)), structure=structure,
                        pin_first_last_8bit=rng.random() < 0.3)
    cost = additive_cost(space, [rng.uniform(0.1, 100) for _ in range(n_layers)])
    genome = space.random_genome(rng)
    limit = limit_fraction * cost(genome)
    fixed = repair(genome, space, cost, limit)
    if cost(cheapest_genome(space)) > limit:
        assert fixed is None
        return
    assert fixed is not None and cost(fixed) <= limit
    space.check_genome(fixed)
    for position, (before, after) in enumerate(zip(genome, fixed)):  # only compressing moves
        assert after >= before if position % 3 == 0 else after <= before
    if cost(genome) <= limit:
        assert fixed == genome


def test_repair_rejects_nan_cost_and_bad_limits():
    with pytest.raises(ValueError, match="NaN"):
        repair((0, 1, 1, 0, 1, 1), TINY, lambda genome: math.nan, 10)
    with pytest.raises(ValueError, match="limit"):
        repair((0, 1, 1, 0, 1, 1), TINY, TINY_COST, math.nan)
    with pytest.raises(ValueError, match="has 3 genes"):
        repair((0, 1, 1), TINY, TINY_COST, 10)


def test_least_pruned_uniforms_keep_one_per_bit_combination():
    # fitting uniforms of TINY at limit 200: every uniform with (1 - s) * bw * ba * 11 <= 200
    fitting = [g for g in TINY.uniform_genomes() if TINY_COST(g) <= 200]
    assert fitting == [(0, 0, 0) * 2, (1, 0, 0) * 2, (1, 0, 1) * 2, (1, 1, 0) * 2]
    # 4/4 bits fit unpruned, so its 50%-pruned twin (1, 0, 0) is no baseline worth training
    assert least_pruned_uniforms(TINY, TINY_COST, 200) == [(0, 0, 0) * 2, (1, 0, 1) * 2, (1, 1, 0) * 2]
    assert least_pruned_uniforms(TINY, TINY_COST, 10) == []


def test_initial_genomes_start_with_the_least_pruned_uniforms_then_repaired_random_ones():
    uniforms = least_pruned_uniforms(TINY, TINY_COST, 200)
    start = initial_genomes(TINY, TINY_COST, 200, 10, random.Random(0))
    # 20 % of 10 slots: two of the three, the ends of the cost order (all three cost 176, so the
    # stable order's first and last)
    assert len(uniforms) == 3 and start[:2] == [(uniforms[0], False), (uniforms[2], False)]
    genomes = [g for g, _ in start]
    assert len(genomes) == len(set(genomes)) == 10 and all(TINY_COST(g) <= 200 for g in genomes)
    assert any(repaired for _, repaired in start[2:])
    assert start == initial_genomes(TINY, TINY_COST, 200, 10, random.Random(0))


def test_initial_genomes_thin_the_uniforms_to_the_dearest_when_one_slot_is_left():
    uniforms = least_pruned_uniforms(TINY, TINY_COST, 704)
    assert len(uniforms) == 4  # 4/4, 4/8, 8/4, 8/8 bits all fit unpruned at 704
    start = initial_genomes(TINY, TINY_COST, 704, 2, random.Random(0))
    # 20 % of 2 slots (at least one): one uniform policy, the most expensive (8/8 bits), then a repaired random one
    assert start[0] == (max(uniforms, key=TINY_COST), False) and len(start) == 2 and start[1][0] not in uniforms


def test_initial_genomes_take_the_uniforms_given_and_picks_rank_them():
    """``uniform_picks`` with a rank (the search passes the sensitivity's predicted distortion) takes
    the uniform policies it scores lowest, in their given order, not the ends of the cost axis; and
    generation 0 takes the uniforms it is given, at most its uniform share, checked against the budget."""
    from evo.core.initial import uniform_picks

    uniforms = least_pruned_uniforms(TINY, TINY_COST, 704)  # 4/4, 4/8, 8/4, 8/8 bits, all unpruned
    score = {uniforms[0]: 3.0, uniforms[1]: 1.0, uniforms[2]: 0.5, uniforms[3]: 2.0}
    picks = uniform_picks(uniforms, TINY_COST, 2, score.__getitem__)
    assert picks == [uniforms[1], uniforms[2]]  # the two lowest, in the given order
    start = initial_genomes(TINY, TINY_COST, 704, 10, random.Random(0), uniforms=picks)
    assert [g for g, _ in start[:2]] == picks and not {uniforms[0], uniforms[3]} & {g for g, _ in start}
    # more than the share (20 % of 10): only the first two are taken
    start = initial_genomes(TINY, TINY_COST, 704, 10, random.Random(0), uniforms=uniforms[::-1])
    assert [g for g, _ in start[:2]] == [uniforms[3], uniforms[2]]
    assert not {uniforms[0], uniforms[1]} & {g for g, _ in start}
    with pytest.raises(ValueError, match="uniform genome .* over the limit 200"):
        initial_genomes(TINY, TINY_COST, 200, 10, random.Random(0), uniforms=[uniforms[3]])
    # without a rank, and without uniforms given: the cheapest and the dearest (4/4 and 8/8)
    assert uniform_picks(uniforms, TINY_COST, 2) == [uniforms[0], uniforms[3]]
    assert [g for g, _ in initial_genomes(TINY, TINY_COST, 704, 10, random.Random(0))[:2]] == [uniforms[0], uniforms[3]]
    # ties are broken by cost, then by the order given
    flat = dict.fromkeys(uniforms, 1.0).__getitem__
    assert uniform_picks(uniforms, TINY_COST, 1, flat) == [min(uniforms, key=TINY_COST)]
    assert uniform_picks(uniforms, TINY_COST, 9, score.__getitem__) == uniforms  # fewer than keep: all


def test_check_reachable_names_the_cheapest_cost():
    check_reachable(TINY, TINY_COST, 88)
    with pytest.raises(ValueError, match=r"budget unreachable: limit=87 .* costs 88"):
        check_reachable(TINY, TINY_COST, 87)


def _lenet_specs():
    from hardware.specs import LayerSpec

    return [LayerSpec("conv1", "conv", 1, 20, kernel=(5, 5), input_hw=(28, 28), output_hw=(24, 24), has_bias=True),
            LayerSpec("conv2", "conv", 20, 50, kernel=(5, 5), input_hw=(12, 12), output_hw=(8, 8), has_bias=True,
                      producer="conv1"),
            LayerSpec("fc1", "linear", 800, 500, has_bias=True, producer="conv2", input_channel_multiplier=16),
            LayerSpec("fc2", "linear", 500, 10, has_bias=True, producer="fc1", prunable_outputs=False)]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), metric=st.sampled_from(["size_bits_honest", "energy_pj", "latency_s", "bops"]),
       structure=st.sampled_from(["unstructured", "channel"]), target=st.sampled_from(["bitserial", "bitfusion"]),
       fraction=st.floats(0.02, 1.0))
def test_repair_with_the_real_cost_functions_never_exceeds_the_budget(seed, metric, structure, target, fraction):
    """The honest size, energy and latency are not monotone in pruning (a bitmask index appears at
    the first pruning step), so repair is checked with them, not only with additive costs."""
    from evo.core.cost_table import make_cost_fn
    from hardware.targets import load_target

    specs = _lenet_specs()
    space = SearchSpace(tuple(s.name for s in specs), structure=structure)
    cost = make_cost_fn(space, specs, load_target(target), metric)
    genome = space.random_genome(random.Random(seed))
    limit = fraction * cost(genome)
    fixed = repair(genome, space, cost, limit)
    if fixed is None:
        assert cost(cheapest_genome(space)) > limit
    else:
        assert cost(fixed) <= limit
        if cost(genome) <= limit:
            assert fixed == genome
