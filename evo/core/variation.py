"""Variation: layer-wise uniform crossover and index mutation, built on DEAP's operators.

DEAP's operators draw from the module-global ``random`` (``random.random()``,
``random.randint()``, ``random.sample()``), which anything else in the process may also
consume. ``deap_rng`` points the ``random`` name inside DEAP's operator modules at a
seeded ``random.Random`` for the duration of a call, so a search is reproducible from its
seed alone (and its RNG state can be checkpointed) without reseeding the global RNG.

Operators take and return plain genome tuples and never modify their inputs.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

from deap.tools import crossover as deap_crossover
from deap.tools import emo as deap_emo
from deap.tools import mutation as deap_mutation

from evo.core.space import GENES_PER_LAYER, SearchSpace
from hardware.checks import check_probability

_DEAP_MODULES = (deap_crossover, deap_mutation, deap_emo)
_DEAP_RNG_LOCK = threading.RLock()  # the swap is process-wide: serialise callers in threads


@contextmanager
def deap_rng(rng: random.Random) -> Iterator[None]:
    """Make DEAP's crossover, mutation and selection operators draw from ``rng``."""
    if not isinstance(rng, random.Random):
        raise ValueError(f"rng={rng!r} must be a random.Random instance (seeded), not the random module")
    with _DEAP_RNG_LOCK:
        saved = [module.random for module in _DEAP_MODULES]
        for module in _DEAP_MODULES:
            module.random = rng
        try:
            yield
        finally:
            for module, original in zip(_DEAP_MODULES, saved):
                module.random = original


def crossover(parent1: Sequence[int], parent2: Sequence[int], rng: random.Random,
              indpb: float = 0.5) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Uniform crossover per layer: a layer's three genes always move together.

    Swapping whole layers keeps each layer's (pruning, weight bits, activation bits) setting
    intact, which a per-gene swap would break up.
    """
    indpb = check_probability("indpb", indpb)
    if len(parent1) != len(parent2) or len(parent1) % GENES_PER_LAYER:
        raise ValueError(f"parents of {len(parent1)} and {len(parent2)} genes: both need the same "
                         f"length, a multiple of {GENES_PER_LAYER}")
    layers1, layers2 = (
        [tuple(parent[i:i + GENES_PER_LAYER]) for i in range(0, len(parent), GENES_PER_LAYER)]
        for parent in (parent1, parent2)
    )
    with deap_rng(rng):
        deap_crossover.cxUniform(layers1, layers2, indpb)  # swaps list items in place (our copies)
    return (tuple(g for layer in layers1 for g in layer), tuple(g for layer in layers2 for g in layer))


def mutate(genome: Sequence[int], space: SearchSpace, rng: random.Random, indpb: float) -> tuple[int, ...]:
    """Each free gene (``SearchSpace.free_genes``) mutates with probability ``indpb``: half the time one index step up or down
    (clipped to its bounds; a local move, e.g. 4 -> 5 bits), else a uniform redraw within its
    bounds (DEAP ``mutUniformInt``; a long jump that keeps diversity)."""
    indpb = check_probability("indpb", indpb)
    child = list(space.check_genome(genome))
    bounds = space.gene_bounds()
    redrawn = []
    for i in space.free_genes():  # a one-choice gene cannot move
        if rng.random() >= indpb:
            continue
        if rng.random() < 0.5:
            low, high = bounds[i]
            child[i] = min(high, max(low, child[i] + rng.choice((-1, 1))))
        else:
            redrawn.append(i)
    if redrawn:
        genes = [child[i] for i in redrawn]
        with deap_rng(rng):
            deap_mutation.mutUniformInt(genes, [bounds[i][0] for i in redrawn],
                                        [bounds[i][1] for i in redrawn], indpb=1.0)
        for i, gene in zip(redrawn, genes):
            child[i] = gene
    return tuple(child)
