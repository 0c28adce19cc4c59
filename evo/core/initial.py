"""Generation 0: the budget-feasible first population (uniform, sensitivity-guided and random
policies spread over the cost axis), and the uniform policies the search must beat.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

from evo.core.repair import PRUNE_GENE, CostFn, _cost, repair
from evo.core.space import GENES_PER_LAYER, SearchSpace

UNIFORM_SHARE = 0.2  # of generation 0, at most, for the uniform policies
GUIDED_SHARE = 0.6  # of generation 0, at most, for the sensitivity-guided policies (the first ones given)
RANDOM_FRACTIONS = (0.1, 1.0)  # the budget fractions random genomes are repaired to


def least_pruned_uniforms(space: SearchSpace, cost_fn: CostFn, limit: float) -> list[tuple[int, ...]]:
    """For every uniform bit-width combination, the least-pruned uniform genome within ``limit``,
    in ``space.uniform_genomes()`` order: the strongest uniform policies of the budget (at the same
    bits, more pruning only costs accuracy)."""
    least: dict[tuple, tuple[int, ...]] = {}
    for genome in space.uniform_genomes():
        bits = tuple(g for i, g in enumerate(genome) if i % GENES_PER_LAYER != PRUNE_GENE)
        if bits not in least and _cost(cost_fn, genome) <= limit:
            least[bits] = genome  # uniform_genomes() lists pruning in ascending order
    return list(least.values())


def uniform_slots(size: int) -> int:
    """How many uniform genomes a generation 0 of ``size`` takes at most."""
    return max(1, math.ceil(UNIFORM_SHARE * size))


def guided_slots(size: int) -> int:
    """How many sensitivity-guided genomes a generation 0 of ``size`` takes at most (the first given)."""
    return max(1, math.ceil(GUIDED_SHARE * size))


def thinned(genomes: list[tuple[int, ...]], cost_fn: CostFn, keep: int) -> list[tuple[int, ...]]:
    """At most ``keep`` of ``genomes``, evenly spread along the cost axis (the cheapest and the
    most expensive always among them), in the order given."""
    if len(genomes) <= keep:
        return list(genomes)
    by_cost = sorted(genomes, key=lambda genome: _cost(cost_fn, genome))
    picked = {by_cost[round(i * (len(by_cost) - 1) / max(1, keep - 1))] for i in range(keep)} if keep > 1 \
        else {by_cost[-1]}
    return [genome for genome in genomes if genome in picked]


def uniform_picks(uniforms: list[tuple[int, ...]], cost_fn: CostFn, keep: int,
                  rank: Callable[[tuple[int, ...]], float] | None = None) -> list[tuple[int, ...]]:
    """At most ``keep`` of the uniform genomes, in the order given: with ``rank`` (e.g. the per-layer
    sensitivity's predicted distortion) the ``keep`` that rank lowest, ties broken by cost then by
    the order given; without it ``thinned`` along the cost axis."""
    if rank is None:
        return thinned(uniforms, cost_fn, keep)
    order = {genome: i for i, genome in enumerate(uniforms)}
    picked = set(sorted(uniforms, key=lambda g: (rank(g), _cost(cost_fn, g), order[g]))[:keep])
    return [genome for genome in uniforms if genome in picked]


def initial_genomes(space: SearchSpace, cost_fn: CostFn, limit: float, size: int, rng: random.Random,
                    draws_per_slot: int = 10, guided: Sequence[tuple[int, ...]] = (),
                    uniforms: Sequence[tuple[int, ...]] | None = None) -> list[tuple[tuple[int, ...], bool]]:
    """Generation 0 as (genome, repaired) pairs, ``size`` distinct genomes when the space allows:

    * uniform genomes, at most ``uniform_slots(size)``: ``uniforms`` as given (the search passes
      ``uniform_picks`` by the sensitivity's predicted distortion), or else the least-pruned ones
      within ``limit`` spread along the cost axis (``uniform_picks`` without a rank); the uniform
      genomes left out are screened after the search for the uniform reference,
      ``evo.methods.evolve.best_uniforms``;
    * the sensitivity-guided genomes (``evo.core.sensitivity.guided_genomes``), never repaired:
      the first ``GUIDED_SHARE`` of the population of them, in the order given;
    * repaired random genomes, each repaired to a budget fraction spread evenly over
      ``RANDOM_FRACTIONS`` so generation 0 covers the cost axis (at most ``draws_per_slot *
      size`` draws)."""
    if uniforms is None:
        uniforms = uniform_picks(least_pruned_uniforms(space, cost_fn, limit), cost_fn, uniform_slots(size))
    chosen: dict[tuple[int, ...], bool] = {}
    for genome in uniforms[:uniform_slots(size)]:
        if _cost(cost_fn, genome) > limit:
            raise ValueError(f"uniform genome {genome} costs {_cost(cost_fn, genome):g}, over the limit {limit:g}")
        chosen.setdefault(tuple(genome), False)
    for genome in guided[:guided_slots(size)]:
        if len(chosen) >= size:
            break
        if _cost(cost_fn, genome) > limit:
            raise ValueError(f"guided genome {genome} costs {_cost(cost_fn, genome):g}, over the limit {limit:g}")
        chosen.setdefault(tuple(genome), False)
    low, high = RANDOM_FRACTIONS
    slots = max(1, size - len(chosen))
    for draw in range(draws_per_slot * size):
        if len(chosen) >= size:
            break
        fraction = high - (high - low) * ((draw % slots) / max(1, slots - 1))
        drawn = space.random_genome(rng)
        fixed = repair(drawn, space, cost_fn, fraction * limit)
        if fixed is not None and fixed not in chosen:
            chosen[fixed] = fixed != drawn
    return list(chosen.items())
