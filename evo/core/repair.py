"""Budget repair: turn an over-budget genome into one within the budget before any trial runs,
and the budget-feasible first generation.

Greedy steepest descent on the budgeted cost: while the genome costs more than the limit,
try every single compressing move (one bit index down for a weight or activation gene, one
pruning index up) and keep the one that lowers the cost most. Every move brings the genome
one step closer to ``cheapest_genome``, so the loop ends after at most
sum(table sizes) moves; it reaches the cheapest genome only when nothing cheaper fit, so
``None`` (unrepairable) means the cheapest genome itself is over the limit (for any cost
that does not rise when a layer is compressed).

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

from evo.core.space import GENES_PER_LAYER, SearchSpace
from hardware.checks import is_number

CostFn = Callable[[tuple[int, ...]], float]
PRUNE_GENE = 0  # position of the pruning gene inside a layer's gene triple


def cheapest_genome(space: SearchSpace) -> tuple[int, ...]:
    """Maximum pruning and the fewest bits in every layer: the cheapest policy the space holds."""
    return tuple(
        high if position % GENES_PER_LAYER == PRUNE_GENE else low
        for position, (low, high) in enumerate(space.gene_bounds())
    )


def compressing_moves(genome: tuple[int, ...], space: SearchSpace) -> Iterator[tuple[int, ...]]:
    """Every genome one compressing step away from ``genome``, in gene order (the tie-break order)."""
    for position, (low, high) in enumerate(space.gene_bounds()):
        step = 1 if position % GENES_PER_LAYER == PRUNE_GENE else -1
        index = genome[position] + step
        if low <= index <= high:
            yield genome[:position] + (index,) + genome[position + 1:]


def expanding_moves(genome: tuple[int, ...], space: SearchSpace) -> Iterator[tuple[int, ...]]:
    """Every genome one step less compressed than ``genome`` (one pruning index down, one bit
    index up), in gene order: the inverse of ``compressing_moves``."""
    for position, (low, high) in enumerate(space.gene_bounds()):
        step = -1 if position % GENES_PER_LAYER == PRUNE_GENE else 1
        index = genome[position] + step
        if low <= index <= high:
            yield genome[:position] + (index,) + genome[position + 1:]


def _cost(cost_fn: CostFn, genome: tuple[int, ...]) -> float:
    cost = float(cost_fn(genome))
    if math.isnan(cost):
        raise ValueError(f"cost_fn returned NaN for genome {genome}; a budgeted cost must be a number")
    return cost


def repair(genome: Sequence[int], space: SearchSpace, cost_fn: CostFn, limit: float) -> tuple[int, ...] | None:
    """The genome itself if it fits ``limit``, else the greedily repaired genome, else None."""
    if not is_number(limit) or math.isnan(limit):  # +inf is a valid limit: nothing to repair
        raise ValueError(f"limit={limit!r} must be a number")
    genome = space.check_genome(genome)
    cost = _cost(cost_fn, genome)
    while cost > limit:
        best, best_cost = None, math.inf
        for candidate in compressing_moves(genome, space):
            candidate_cost = _cost(cost_fn, candidate)
            if best is None or candidate_cost < best_cost:  # strict: ties keep the earlier gene
                best, best_cost = candidate, candidate_cost
        if best is None:
            return None
        genome, cost = best, best_cost
    return genome


def check_reachable(space: SearchSpace, cost_fn: CostFn, limit: float) -> None:
    """ValueError naming the cheapest policy's cost when even that does not fit ``limit``."""
    cost = _cost(cost_fn, cheapest_genome(space))
    if not cost <= limit:
        raise ValueError(f"budget unreachable: limit={limit:g} but the cheapest policy in the search space "
                         f"(max pruning, fewest bits) costs {cost:g}; raise the budget or add cheaper choices "
                         f"(more sparsity, fewer bits) to the search space")


