"""Genomes and their codecs: the compression Policy a genome decodes to (``SearchSpace.decode``)
and back (``from_policy``: a user's policy file as a genome), and the short text key of the
Parquet tables and logs.

A genome is a plain ``tuple[int, ...]`` of choice-table indices (see ``evo.core.space``): it is
hashable, so it keys the evaluation cache, and it pickles and JSON-encodes as plain data.
DEAP objects never leave the driver (DESIGN.md, "Known pitfalls"): ``Individual`` is a
plain list subclass defined here instead of a ``deap.creator`` class, because creator
classes must be re-created in every process that unpickles them and DEAP 1.4 pickles them
by value ("metaclass conflict" after one Ray round trip).

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

from typing import Sequence

from hardware.policy import Policy
from evo.core.space import GENES_PER_LAYER, SearchSpace
from hardware.checks import is_finite_number

Genome = tuple[int, ...]


class Individual(list):
    """A DEAP-compatible individual: a list of gene indices with a ``fitness`` attribute."""

    def __init__(self, genes: Sequence[int] = (), fitness=None):
        super().__init__(genes)
        self.fitness = fitness


def _index_of(value: object, table: tuple, where: str) -> int:
    # bool is an int subclass (True == 1 == keep ratio 1.0): never a valid setting
    if not is_finite_number(value):
        raise ValueError(f"{where}={value!r} is not a number; valid choices: {list(table)}")
    for index, choice in enumerate(table):
        if value == choice:
            return index
    raise ValueError(f"{where}={value!r} is not in the search space; valid choices: {list(table)}")


# -- Policy -------------------------------------------------------------------------------
def from_policy(policy: Policy, space: SearchSpace) -> Genome:
    """The genome whose decoded policy is ``policy``; ValueError if a value is not in the tables."""
    if policy.structure != space.structure:
        raise ValueError(f"policy structure={policy.structure!r} but the search space uses "
                         f"structure={space.structure!r}; valid choices: [{space.structure!r}]")
    policy.check_matches(space.layer_names)
    prune_field = "sparsity" if space.structure == "unstructured" else "keep_ratio"
    genome = []
    for position, table in enumerate(space.gene_tables):
        layer, kind = space.gene_name(position)
        field = prune_field if kind == "prune" else kind
        if kind == "prune" and layer in space.fixed_pruning:
            genome.append(0)  # a keep ratio that is never applied: any value means the same policy
            continue
        genome.append(_index_of(getattr(policy[layer], field), table, f"layer {layer!r} {field}"))
    return tuple(genome)


# -- short text key (Parquet column, logs) -------------------------------------------------
def genome_key(genome: Sequence[int]) -> str:
    """Stable text form, one dot-joined gene triple per layer: ``"3.1.2|0.4.4"``."""
    genome = tuple(genome)
    if not genome or len(genome) % GENES_PER_LAYER:
        raise ValueError(f"genome of {len(genome)} genes is not {GENES_PER_LAYER} genes per layer")
    return "|".join(
        ".".join(str(int(gene)) for gene in genome[i:i + GENES_PER_LAYER])
        for i in range(0, len(genome), GENES_PER_LAYER)
    )


def genome_from_key(key: str) -> Genome:
    try:
        layers = [tuple(int(gene) for gene in part.split(".")) for part in key.split("|")]
    except (AttributeError, ValueError):
        raise ValueError(f"genome key {key!r} is not of the form '3.1.2|0.4.4'") from None
    if any(len(layer) != GENES_PER_LAYER or min(layer) < 0 for layer in layers):
        raise ValueError(f"genome key {key!r} must hold {GENES_PER_LAYER} non-negative genes per layer")
    return tuple(gene for layer in layers for gene in layer)

