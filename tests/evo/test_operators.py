import random

import pytest
from deap.tools import crossover as deap_crossover
from deap.tools import emo as deap_emo
from deap.tools import mutation as deap_mutation
from hypothesis import given, settings
from hypothesis import strategies as st

from evo.core.variation import crossover, deap_rng, mutate
from evo.core.space import SearchSpace

SPACE = SearchSpace(tuple(f"layer{i}" for i in range(6)), pin_first_last_8bit=True)
# every gene differs between the parents, so a gene-level (not layer-level) swap would show
PARENT1 = (0, 0, 0) + (0, 0, 0) * 4 + (0, 0, 0)
PARENT2 = (7, 0, 0) + (7, 5, 5) * 4 + (7, 0, 0)
MIXED1 = (1, 0, 0, 2, 1, 4, 3, 2, 3, 4, 3, 2, 5, 4, 1, 6, 0, 0)
MIXED2 = (6, 0, 0, 5, 5, 0, 4, 0, 1, 3, 1, 0, 2, 0, 5, 1, 0, 0)


def layers(genome):
    return [genome[i:i + 3] for i in range(0, len(genome), 3)]


@pytest.mark.parametrize("seed", range(20))
def test_crossover_swaps_whole_layers(seed):
    child1, child2 = crossover(MIXED1, MIXED2, random.Random(seed))
    for l1, l2, p1, p2 in zip(layers(child1), layers(child2), layers(MIXED1), layers(MIXED2)):
        assert (l1, l2) in ((p1, p2), (p2, p1))


def test_crossover_mixes_layers_at_indpb_one_half():
    swapped = 0
    for seed in range(50):
        child1, _ = crossover(MIXED1, MIXED2, random.Random(seed))
        swapped += sum(c != p for c, p in zip(layers(child1), layers(MIXED1)))
    assert 0.35 < swapped / (50 * 6) < 0.65


def test_crossover_probability_extremes():
    assert crossover(MIXED1, MIXED2, random.Random(0), indpb=0.0) == (MIXED1, MIXED2)
    assert crossover(MIXED1, MIXED2, random.Random(0), indpb=1.0) == (MIXED2, MIXED1)


def test_crossover_is_reproducible_and_leaves_inputs_alone():
    parent1, parent2 = list(MIXED1), list(MIXED2)
    first = crossover(parent1, parent2, random.Random(7))
    assert first == crossover(parent1, parent2, random.Random(7))
    assert parent1 == list(MIXED1) and parent2 == list(MIXED2)
    assert all(isinstance(child, tuple) for child in first)
    assert {crossover(MIXED1, MIXED2, random.Random(s)) for s in range(10)} != {first}


@pytest.mark.parametrize("bad", [(1, 2), (1, 2, 3, 4)])
def test_crossover_rejects_mismatched_parents(bad):
    with pytest.raises(ValueError, match="multiple of 3"):
        crossover((1, 2, 3), bad, random.Random(0))


@pytest.mark.parametrize("indpb", [-0.1, 1.5, float("nan"), True])
def test_operators_reject_bad_probabilities(indpb):
    with pytest.raises(ValueError, match="indpb"):
        crossover(MIXED1, MIXED2, random.Random(0), indpb=indpb)
    with pytest.raises(ValueError, match="indpb"):
        mutate(MIXED1, SPACE, random.Random(0), indpb)


@settings(max_examples=200, deadline=None, derandomize=True)  # seeded: reproducible
@given(seed=st.integers(0, 2**32 - 1), indpb=st.floats(0.0, 1.0))
def test_mutation_stays_within_bounds(seed, indpb):
    rng = random.Random(seed)
    child = mutate(SPACE.random_genome(rng), SPACE, rng, indpb)
    assert all(low <= gene <= high for gene, (low, high) in zip(child, SPACE.gene_bounds()))
    assert child[1:3] == child[-2:] == (0, 0)  # pinned genes have one choice


def test_mutation_makes_both_steps_and_jumps():
    deltas = []
    for seed in range(100):
        child = mutate(MIXED1, SPACE, random.Random(seed), indpb=1.0)
        deltas += [abs(c - p) for c, p in zip(child, MIXED1)]
    assert 1 in deltas and max(deltas) >= 3  # +-1 steps and uniform redraws both happen


def test_mutation_at_a_bound_clips_steps():
    top = tuple(high for _, high in SPACE.gene_bounds())
    for seed in range(50):
        child = mutate(top, SPACE, random.Random(seed), indpb=1.0)
        assert all(gene <= high for gene, (_, high) in zip(child, SPACE.gene_bounds()))


def test_mutation_probability_zero_is_identity_and_inputs_stay_untouched():
    genome = list(MIXED1)
    assert mutate(genome, SPACE, random.Random(0), 0.0) == MIXED1
    first = mutate(genome, SPACE, random.Random(3), 0.5)
    assert first == mutate(genome, SPACE, random.Random(3), 0.5) and isinstance(first, tuple)
    assert first != MIXED1 and genome == list(MIXED1)


def test_mutation_rate_follows_indpb():
    space, genome = SearchSpace(tuple("abcd")), MIXED1[3:15]  # no gene sits at a bound
    changed = sum(
        c != p for seed in range(200) for c, p in zip(mutate(genome, space, random.Random(seed), 0.25), genome)
    )
    # chosen with p=0.25; then a step always changes the gene, a redraw with p=1-1/len(table):
    # 0.25 * (0.5 + 0.5 * (7/8 | 5/6)) ~= 0.231 over 2,400 genes (sd ~0.009)
    assert 0.195 < changed / (200 * 12) < 0.27


def test_rng_swap_leaves_global_random_alone_and_restores_deap():
    random.seed(123)
    before = random.getstate()
    crossover(MIXED1, MIXED2, random.Random(1))
    mutate(MIXED1, SPACE, random.Random(1), 1.0)
    assert random.getstate() == before
    assert deap_crossover.random is random and deap_mutation.random is random and deap_emo.random is random


def test_rng_swap_is_undone_when_the_operator_raises():
    with pytest.raises(RuntimeError):
        with deap_rng(random.Random(0)):
            raise RuntimeError("boom")
    assert deap_mutation.random is random


def test_rng_swap_needs_a_random_instance():
    with pytest.raises(ValueError, match="random.Random"):
        with deap_rng(random):
            pass
