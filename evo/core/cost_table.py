"""A genome's budget cost as a sum of per-layer table lookups.

Repair and the initial population call the cost function thousands of times per generation;
pricing a whole policy through ``hardware.cost`` takes ~0.3-0.5 ms for a 25-layer model. With
unstructured pruning a layer's cost depends only on its own (sparsity, weight bits, activation
bits), and every budget metric is a sum over layers, so the cost of each choice is priced once
up front (one uniform policy per choice combination) and a genome's cost is ~L dict lookups.
Channel pruning couples a layer to its producer's keep ratio, so it keeps the exact path.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

from evo.core.space import GENES_PER_LAYER, SearchSpace
from hardware.cost import layer_costs, total_costs
from hardware.policy import Policy


def layer_cost_tables(space: SearchSpace, specs: Sequence, target, metric: str) -> list[dict[tuple, float]]:
    """tables[l][(prune index, weight-bit index, activation-bit index)] = layer l's cost."""
    names = space.layer_names
    tables: list[dict[tuple, float]] = [{} for _ in names]
    weight_bits = sorted({b for i in range(len(names)) for b in space.layer_tables(i)[1]})
    activation_bits = sorted({b for i in range(len(names)) for b in space.layer_tables(i)[2]})
    for sparsity, wb, ab in itertools.product(space.sparsity_choices, weight_bits, activation_bits):
        rows = layer_costs(specs, Policy.uniform(names, sparsity=sparsity, weight_bits=wb, activation_bits=ab), target)
        for layer, row in enumerate(rows):
            prune, wtable, atable = space.layer_tables(layer)
            if wb in wtable and ab in atable:
                tables[layer][(prune.index(sparsity), wtable.index(wb), atable.index(ab))] = float(row[metric])
    return tables


def make_cost_fn(space: SearchSpace, specs: Sequence, target, metric: str) -> Callable[[Sequence[int]], float]:
    """The budget metric of a genome: table lookups for unstructured pruning, the full model otherwise."""
    if space.structure != "unstructured":
        def exact(genome) -> float:
            return float(total_costs(specs, space.decode(genome), target)[metric])

        return exact
    tables = layer_cost_tables(space, specs, target, metric)
    n = GENES_PER_LAYER

    def lookup(genome) -> float:
        return sum(table[tuple(genome[i * n:(i + 1) * n])] for i, table in enumerate(tables))

    return lookup
