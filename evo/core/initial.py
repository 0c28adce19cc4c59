"""Generation 0: the budget-feasible first population, and the uniform policies the search must beat.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import random

from evo.core.repair import PRUNE_GENE, CostFn, _cost, repair
from evo.core.space import GENES_PER_LAYER, SearchSpace


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



def initial_genomes(space: SearchSpace, cost_fn: CostFn, limit: float, size: int, rng: random.Random,
                    draws_per_slot: int = 10) -> list[tuple[tuple[int, ...], bool]]:
    """Generation 0 as (genome, repaired) pairs: every least-pruned uniform genome within ``limit``
    (never repaired, and all of them even past ``size``: they are the uniform baseline the search
    must beat, evaluated once, and good parents), then repaired random genomes until ``size``
    distinct genomes (or ``draws_per_slot * size`` random draws) are reached."""
    chosen = {genome: False for genome in least_pruned_uniforms(space, cost_fn, limit)}
    for _ in range(draws_per_slot * size):
        if len(chosen) >= size:
            break
        drawn = space.random_genome(rng)
        fixed = repair(drawn, space, cost_fn, limit)
        if fixed is not None and fixed not in chosen:
            chosen[fixed] = fixed != drawn
    return list(chosen.items())
