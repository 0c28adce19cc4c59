"""The search space: per-layer choice tables, gene bounds, uniform and random genomes.

A genome holds three integer genes per prunable layer, in the order
``[prune, weight_bits, activation_bits]``; each gene is an *index* into that layer's
choice table, so DEAP's integer operators work unchanged and bounds are derived from the
tables rather than written by hand. Every table is ordered so that a higher pruning index
compresses more (more sparsity / lower keep ratio) and a higher bit index compresses less.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, fields
from typing import Mapping, Sequence

from hardware.policy import STRUCTURES, LayerPolicy, Policy, check_bits, check_keep_ratio, check_sparsity

DEFAULT_SPARSITY_CHOICES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEFAULT_KEEP_RATIO_CHOICES = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)
DEFAULT_BIT_CHOICES = (2, 3, 4, 5, 6, 8)
PINNED_BITS = (8,)
GENES_PER_LAYER = 3
GENE_KINDS = ("prune", "weight_bits", "activation_bits")


def _check_table(name: str, values: Sequence, check, descending: bool = False) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name}={values!r} must be a non-empty sequence")
    table = tuple(check(value, name) for value in values)
    ordered = tuple(sorted(set(table), reverse=descending))
    if table != ordered:
        raise ValueError(
            f"{name}={list(values)!r} must be unique and sorted {'descending' if descending else 'ascending'}, "
            f"e.g. {list(ordered)}"
        )
    return table


@dataclass(frozen=True)
class SearchSpace:
    layer_names: tuple[str, ...]
    structure: str = "unstructured"
    sparsity_choices: tuple[float, ...] = DEFAULT_SPARSITY_CHOICES
    keep_ratio_choices: tuple[float, ...] = DEFAULT_KEEP_RATIO_CHOICES
    weight_bit_choices: tuple[int, ...] = DEFAULT_BIT_CHOICES
    activation_bit_choices: tuple[int, ...] = DEFAULT_BIT_CHOICES
    pin_first_last_8bit: bool = False
    # layers whose pruning gene cannot change the policy (channel structure: their keep ratio is
    # never applied, ``hardware.specs.keep_ratio_setters``): one choice, so no operator moves it
    fixed_pruning: tuple[str, ...] = ()
    # one choice table per gene, derived in __post_init__
    gene_tables: tuple[tuple, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.layer_names
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ValueError(f"layer_names={names!r} must be a non-empty sequence of layer names")
        names = tuple(names)
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"layer_names={list(names)!r} must be unique non-empty strings")
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure={self.structure!r} is not valid; valid choices: {list(STRUCTURES)}")
        if not isinstance(self.pin_first_last_8bit, bool):
            raise ValueError(f"pin_first_last_8bit={self.pin_first_last_8bit!r} must be True or False")
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        set_(self, "layer_names", names)
        fixed = self.fixed_pruning
        if isinstance(fixed, str) or not isinstance(fixed, Sequence) or not set(fixed) <= set(names):
            raise ValueError(f"fixed_pruning={fixed!r} must be a sequence of layer names out of {list(names)}")
        set_(self, "fixed_pruning", tuple(name for name in names if name in set(fixed)))
        set_(self, "sparsity_choices", _check_table("sparsity_choices", self.sparsity_choices, check_sparsity))
        set_(self, "keep_ratio_choices",
             _check_table("keep_ratio_choices", self.keep_ratio_choices, check_keep_ratio, descending=True))
        set_(self, "weight_bit_choices", _check_table("weight_bit_choices", self.weight_bit_choices, check_bits))
        set_(self, "activation_bit_choices",
             _check_table("activation_bit_choices", self.activation_bit_choices, check_bits))
        set_(self, "gene_tables", tuple(itertools.chain.from_iterable(
            self.layer_tables(i) for i in range(len(names)))))

    # -- tables and bounds --------------------------------------------------------------
    @property
    def pruning_choices(self) -> tuple[float, ...]:
        return self.sparsity_choices if self.structure == "unstructured" else self.keep_ratio_choices

    def is_pinned(self, layer_index: int) -> bool:
        return self.pin_first_last_8bit and layer_index in (0, len(self.layer_names) - 1)

    def layer_tables(self, layer_index: int) -> tuple[tuple, tuple, tuple]:
        """(pruning, weight bits, activation bits) choice tables of one layer."""
        pruning = self.pruning_choices
        if self.layer_names[layer_index] in self.fixed_pruning:
            pruning = pruning[:1]  # the least compressing choice; it is never applied
        if self.is_pinned(layer_index):
            return pruning, PINNED_BITS, PINNED_BITS
        return pruning, self.weight_bit_choices, self.activation_bit_choices

    @property
    def n_genes(self) -> int:
        return GENES_PER_LAYER * len(self.layer_names)

    def gene_bounds(self) -> list[tuple[int, int]]:
        """Inclusive (low, high) index bounds of every gene."""
        return [(0, len(table) - 1) for table in self.gene_tables]

    def free_genes(self) -> list[int]:
        """Positions of the genes with more than one choice: the ones the operators may move
        (a pinned bit width or a fixed pruning gene has one)."""
        return [position for position, table in enumerate(self.gene_tables) if len(table) > 1]

    def check_genome(self, genome: Sequence[int]) -> tuple[int, ...]:
        """The genome as a tuple; ValueError if its length or any index is out of range."""
        genome = tuple(genome)
        if len(genome) != self.n_genes:
            raise ValueError(f"genome has {len(genome)} genes; this space needs {self.n_genes} "
                             f"({GENES_PER_LAYER} per layer x {len(self.layer_names)} layers)")
        for position, (index, table) in enumerate(zip(genome, self.gene_tables)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(table):
                layer, kind = self.gene_name(position)
                raise ValueError(f"gene {position} ({layer}/{kind}) = {index!r}; valid indices: 0..{len(table) - 1}")
        return genome

    def gene_name(self, position: int) -> tuple[str, str]:
        return self.layer_names[position // GENES_PER_LAYER], GENE_KINDS[position % GENES_PER_LAYER]

    # -- genomes ------------------------------------------------------------------------
    def uniform_genomes(self) -> list[tuple[int, ...]]:
        """Every uniform policy: the same index for every layer (pinned layers keep 8 bits)."""
        prune, wbits, abits = (range(len(t)) for t in
                               (self.pruning_choices, self.weight_bit_choices, self.activation_bit_choices))
        genomes = {}  # dict keeps first-seen order while dropping repeats made by pinning and fixing
        for combo in itertools.product(prune, wbits, abits):
            genome = tuple(min(index, len(table) - 1) for index, table in zip(combo * len(self.layer_names),
                                                                              self.gene_tables))
            genomes.setdefault(genome, None)
        return list(genomes)

    def random_genome(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randint(low, high) for low, high in self.gene_bounds())

    def decode(self, genome: Sequence[int]) -> Policy:
        genome = self.check_genome(genome)
        layers = []
        for i, name in enumerate(self.layer_names):
            prune, wbits, abits = (table[index] for table, index in zip(
                self.gene_tables[3 * i:3 * i + 3], genome[3 * i:3 * i + 3]))
            pruning = {"sparsity": prune} if self.structure == "unstructured" else {"keep_ratio": prune}
            layers.append((name, LayerPolicy(weight_bits=wbits, activation_bits=abits, **pruning)))
        return Policy(tuple(layers), structure=self.structure)

    # -- persistence (plain data, for Population.state) -------------------------------------
    def to_dict(self) -> dict:
        return {
            "layer_names": list(self.layer_names),
            "structure": self.structure,
            "sparsity_choices": list(self.sparsity_choices),
            "keep_ratio_choices": list(self.keep_ratio_choices),
            "weight_bit_choices": list(self.weight_bit_choices),
            "activation_bit_choices": list(self.activation_bit_choices),
            "pin_first_last_8bit": self.pin_first_last_8bit,
            "fixed_pruning": list(self.fixed_pruning),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "SearchSpace":
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"search space: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})
