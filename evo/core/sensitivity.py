"""Sensitivity-guided policies for generation 0 (HAWQ-V3-style, with a greedy knapsack).

Each layer's sensitivity is measured once per run (``trainables.sensitivity``): the increase of
the float model's loss when that layer alone is compressed, for every (pruning, weight-bit)
pair of its tables and for every activation bit width. A genome's predicted distortion is the
sum over layers of its choices' entries. ``guided_genomes`` walks from the least compressed
genome towards cheaper ones, one gene step at a time, always taking the step that costs the
least distortion per unit of cost saved (the greedy solution of the multiple-choice knapsack
that HAWQ-V3 solves as an integer program), and keeps the genome it holds when its cost first
fits each fraction of the budget. ``filled_genome`` walks the other way: from a chosen genome it
takes, step by step, the gene move that removes the most predicted distortion per unit of cost
added, as long as the genome stays within the budget, so a final policy uses the budget it was
given (a screened policy at 70 % of a size budget leaves capacity a long fine-tune could use). The
walks price genomes with the run's own ``cost_fn``, so
couplings between layers (channel pruning's shared masks) are priced as they are.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from evo.core.repair import CostFn, _cost, compressing_moves, expanding_moves
from evo.core.space import GENES_PER_LAYER, SearchSpace

# Budget fractions of the guided genomes, in the order generation 0 takes them (it takes at most
# evo.core.initial.GUIDED_SHARE of its size): first the budget's upper part, where the most accurate
# policy lies, then the cheap end, which the hypervolume scores (LeNet-5, bops=1/512: 80 % validation
# after one 80-step screen at 0.14 of the budget; the former fractions 1, 0.85, 0.7, 0.55 left
# generation 0's front at 0.45-1.0 of it), then between.
GUIDED_FRACTIONS = (1.0, 0.85, 0.7, 0.55, 0.15, 0.4, 0.25)


@dataclass(frozen=True)
class Sensitivity:
    """``weight[l][p][w]``: loss increase with layer l pruned at its p-th pruning choice and its
    weights at the w-th bit choice; ``activation[l][a]``: with its input at the a-th activation
    bit choice. Indices are those of ``SearchSpace.layer_tables``."""

    weight: tuple[tuple[tuple[float, ...], ...], ...]
    activation: tuple[tuple[float, ...], ...]

    @classmethod
    def from_lists(cls, weight, activation) -> "Sensitivity":
        """The tables as nested sequences (a measurement's lists, a JSON round trip) made tuples."""
        return cls(tuple(tuple(tuple(row) for row in layer) for layer in weight),
                   tuple(tuple(layer) for layer in activation))

    def check(self, space: SearchSpace) -> "Sensitivity":
        """ValueError unless the tables have the space's shape and hold numbers."""
        if len(self.weight) != len(space.layer_names) or len(self.activation) != len(space.layer_names):
            raise ValueError(f"sensitivity tables cover {len(self.weight)} layers; the space has "
                             f"{len(space.layer_names)}")
        for i, name in enumerate(space.layer_names):
            prune, wbits, abits = space.layer_tables(i)
            shape = [len(row) for row in self.weight[i]]
            if shape != [len(wbits)] * len(prune) or len(self.activation[i]) != len(abits):
                raise ValueError(f"layer {name!r}: sensitivity tables of shape {shape} x {len(self.activation[i])}, "
                                 f"the space's are {[len(wbits)] * len(prune)} x {len(abits)}")
            values = [v for row in self.weight[i] for v in row] + list(self.activation[i])
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"layer {name!r}: sensitivity values must be finite numbers")
        return self

    def distortion(self, genome: Sequence[int]) -> float:
        """The predicted loss increase of ``genome`` (the sum of its layers' entries)."""
        return sum(self.parts(genome))

    def parts(self, genome: Sequence[int]) -> tuple[float, float]:
        """``genome``'s predicted loss increase split into its weight and its activation entries."""
        weight = activation = 0.0
        for i in range(len(self.weight)):
            prune, wbits, abits = genome[GENES_PER_LAYER * i:GENES_PER_LAYER * (i + 1)]
            weight += self.weight[i][prune][wbits]
            activation += self.activation[i][abits]
        return weight, activation


def least_compressed_genome(space: SearchSpace) -> tuple[int, ...]:
    """No pruning, the widest bits of every table."""
    return tuple(0 if position % GENES_PER_LAYER == 0 else len(table) - 1
                 for position, table in enumerate(space.gene_tables))


def guided_genomes(space: SearchSpace, cost_fn: CostFn, limit: float, sensitivity: Sensitivity,
                   fractions: Sequence[float] = GUIDED_FRACTIONS) -> list[tuple[int, ...]]:
    """One genome per fraction of ``limit`` (the first one the walk reaches within it; a fraction
    the walk cannot reach gives none), repeats dropped, in the order of ``fractions``."""
    sensitivity.check(space)
    for fraction in fractions:
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise ValueError(f"fractions={list(fractions)!r}: each must be in (0, 1]")
    genome = least_compressed_genome(space)
    cost, distortion = _cost(cost_fn, genome), sensitivity.distortion(genome)
    waiting = sorted(set(fractions), reverse=True)
    found: dict[float, tuple[int, ...]] = {}
    while waiting:
        while waiting and cost <= waiting[0] * limit:
            found[waiting.pop(0)] = genome
        if not waiting:
            break
        best = None
        for move in compressing_moves(genome, space):
            move_cost = _cost(cost_fn, move)
            if move_cost >= cost:
                continue
            price = (sensitivity.distortion(move) - distortion) / (cost - move_cost)  # per unit of cost saved
            if best is None or price < best[0]:
                best = (price, move, move_cost)
        if best is None:
            break
        _, genome, cost = best
        distortion = sensitivity.distortion(genome)
    return list(dict.fromkeys(found[f] for f in fractions if f in found))


def filled_genome(genome: Sequence[int], space: SearchSpace, cost_fn: CostFn, limit: float,
                  sensitivity: Sensitivity) -> tuple[int, ...]:
    """``genome`` grown within ``limit``: while some single step less compression (``expanding_moves``)
    still fits and lowers the predicted distortion, take the one that lowers it most per unit of
    cost added (a step that adds no cost and lowers it is taken first; ties keep the earlier gene).
    A genome over ``limit`` is refused; one no step can improve comes back as it is."""
    sensitivity.check(space)
    genome = space.check_genome(genome)
    cost = _cost(cost_fn, genome)
    if not cost <= limit:
        raise ValueError(f"genome {genome} costs {cost:g}, over the limit {limit:g}: only a genome within the "
                         "budget is filled")
    distortion = sensitivity.distortion(genome)
    while True:
        best = None
        for move in expanding_moves(genome, space):
            move_cost = _cost(cost_fn, move)
            gain = distortion - sensitivity.distortion(move)
            if move_cost > limit or gain <= 0:
                continue
            added = move_cost - cost
            value = math.inf if added <= 0 else gain / added  # distortion removed per unit of cost added
            if best is None or value > best[0] or (value == best[0] == math.inf and gain > best[3]):
                best = (value, move, move_cost, gain)
        if best is None:
            return genome
        _, genome, cost, _ = best
        distortion = sensitivity.distortion(genome)
