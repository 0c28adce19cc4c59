"""The pure half of the constrained-gradient baseline (Yang et al., CVPR 2020): its settings,
its budget as a knapsack constraint, the policy it reports, and its two projections as
knapsack problems solved greedily. numpy only (no torch, no Ray), so the command line and
the driver can validate everything without importing torch.

The constraint is sum_l b_l * u_l * nnz_l <= S: every kept weight of layer l costs its bit
width b_l times a per-layer unit u_l (1 for model size; b_a * H*W of the layer for BOPs).

* ``sparse_knapsack`` (SparseProj, bits fixed) is a 0-1 knapsack over single weights: value
  w^2, cost b_l * u_l. The greedy sorts all weights of all layers by w^2 / cost and keeps the
  longest prefix within the budget, so its value is at least the optimum minus the largest
  single value. Each layer first keeps its ``min_per_layer`` largest weights: a layer with
  no weight would cut the network (and a policy's sparsity must stay below 1).
* ``bits_knapsack`` (QuantProj, counts fixed) is a multiple-choice knapsack: one bit width
  per layer, distortion D_l(b) to minimise, cost b * u_l * nnz_l. The greedy of Sinha and
  Zoltners (1979) walks the upgrades on each layer's lower convex hull in order of
  distortion saved per unit of cost; its saving is at least the optimum's minus one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hardware.checks import check_int, check_number, check_positive
from hardware.policy import FLOAT_BITS, LayerPolicy, Policy, check_bits
from hardware.specs import LayerSpec

QUANTIZERS = ("kmeans", "uniform")  # the paper's codebook; the evolved policies' uniform grid
BIT_CHOICES = (2, 3, 4, 5, 6, 7, 8)  # the paper's B = {1..8} less 1 bit, which policies cannot express
CONSTRAINED_METRICS = ("size_bits", "bops")  # costs of the form sum_l b_l * u_l * nnz_l


def check_quantizer(quantizer: object) -> str:
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer={quantizer!r} is not valid; valid choices: {list(QUANTIZERS)}")
    return quantizer


@dataclass(frozen=True)
class ADMMSettings:
    """Defaults: a few-minute CPU run for LeNet-5/Fashion-MNIST. ``PAPER_LENET5`` holds the
    published recipe (120 epochs, lr 0.1 cosine, momentum 0.93, wd 5e-4, batch 256, rho 0.05)."""

    epochs: int = 4
    fine_tune_epochs: int = 2
    rho: float = 0.05
    lr: float = 0.02
    fine_tune_lr: float = 0.01
    momentum: float = 0.93
    weight_decay: float = 5e-4
    batch_size: int = 256
    quantizer: str = "kmeans"
    initial_bits: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("fine_tune_epochs", self.fine_tune_epochs, minimum=0)
        check_int("seed", self.seed, minimum=0)
        for name in ("rho", "lr", "fine_tune_lr"):
            check_positive(name, getattr(self, name))
        for name in ("momentum", "weight_decay"):
            check_number(name, getattr(self, name), minimum=0.0, below=1.0)
        check_quantizer(self.quantizer)
        if self.initial_bits not in BIT_CHOICES:
            raise ValueError(f"initial_bits={self.initial_bits!r}; valid choices: {list(BIT_CHOICES)}")


# The published LeNet-5/MNIST recipe; it starts from 3-bit weights. The paper's separate
# fine-tune length is not part of it: ``fine_tune_epochs`` keeps our default.
PAPER_LENET5 = ADMMSettings(epochs=120, rho=0.05, lr=0.1, momentum=0.93, weight_decay=5e-4, batch_size=256,
                            initial_bits=3)


def policy_from(specs: Sequence[LayerSpec], nnz: Sequence[int], bits: Sequence[int], activation_bits: int) -> Policy:
    """The policy whose kept-weight counts round((1 - s) * N) are exactly ``nnz``."""
    layers = []
    for spec, count, width in zip(specs, nnz, bits):
        total = spec.weights
        if not 1 <= count <= total:
            raise ValueError(f"layer {spec.name!r}: nnz={count} must be in [1, {total}]")
        sparsity = (total - count) / total
        while round((1.0 - sparsity) * total) != count:  # float rounding: step to the next float
            sparsity = float(np.nextafter(sparsity, 1.0 if round((1.0 - sparsity) * total) > count else 0.0))
        layers.append((spec.name, LayerPolicy(sparsity=sparsity, weight_bits=int(width),
                                              activation_bits=activation_bits)))
    return Policy(tuple(layers))


@dataclass(frozen=True)
class BudgetConstraint:
    """sum_l b_l * unit_costs[l] * nnz_l <= limit, the baseline's view of a hardware budget.

    size_bits (Yang et al.'s count): unit 1, activations stay float (32 bits), as in the paper.
    bops (our extension): unit b_a * H*W of the layer, with one fixed activation width b_a."""

    metric: str
    limit: float
    unit_costs: tuple[int, ...]
    weights: tuple[int, ...]  # N_l, the weights of each layer
    activation_bits: int

    @classmethod
    def from_specs(cls, specs: Sequence[LayerSpec], metric: str, limit: float, *,
                   activation_bits: int = 8) -> "BudgetConstraint":
        if metric not in CONSTRAINED_METRICS:
            raise ValueError(f"the ADMM baseline constrains size (size_bits, the comparable size) or bops, not "
                             f"{metric!r}; valid choices: {list(CONSTRAINED_METRICS)}")
        check_bits(activation_bits, "activation_bits")
        if metric == "size_bits":
            activation_bits, units = FLOAT_BITS, tuple(1 for _ in specs)
        else:
            units = tuple(activation_bits * spec.output_positions for spec in specs)
        return cls(metric=metric, limit=float(_check_budget(limit)), unit_costs=units,
                   weights=tuple(spec.weights for spec in specs), activation_bits=activation_bits)

    def cost(self, nnz: Sequence[int], bits: Sequence[int]) -> float:
        return float(sum(b * u * n for b, u, n in zip(bits, self.unit_costs, nnz)))

    @property
    def minimum(self) -> float:
        """The cheapest result: one weight per layer at the lowest bit width."""
        return float(BIT_CHOICES[0] * sum(self.unit_costs))

    def check_reachable(self, budget_text: str = "") -> None:
        if self.limit < self.minimum:
            raise ValueError(
                f"budget {budget_text or self.limit} ({self.metric} <= {self.limit:.6g}) is below what the ADMM "
                f"baseline can reach: one weight per layer at {BIT_CHOICES[0]} bits already costs "
                f"{self.minimum:.6g} ({len(self.unit_costs)} layers); loosen the budget to at least that")

    def initial_bits(self, preferred: int) -> int:
        """The first SparseProj's bit width: ``preferred``, lowered until one weight per layer fits."""
        fitting = [b for b in BIT_CHOICES if b <= preferred and b * sum(self.unit_costs) <= self.limit]
        if not fitting:
            self.check_reachable()
        return max(fitting)


def _check_budget(budget: float) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.floating, np.integer)):
        raise ValueError(f"budget={budget!r} must be a number")
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget={budget!r} must be a finite number >= 0")
    return float(budget)


def _reserved_items(values: Sequence[np.ndarray], min_per_layer: int) -> list[np.ndarray]:
    """Indices (within each layer) of the layer's ``min_per_layer`` largest values."""
    reserved = []
    for layer_values in values:
        count = min(min_per_layer, layer_values.size)
        if count == 0:
            reserved.append(np.empty(0, dtype=np.int64))
            continue
        reserved.append(np.argpartition(-layer_values, count - 1)[:count])
    return reserved


def sparse_knapsack(values: Sequence[np.ndarray], item_costs: Sequence[float], budget: float, *,
                    min_per_layer: int = 1) -> list[np.ndarray]:
    """Which items (weights) to keep: one boolean array per layer, shaped like ``values``.

    ``values[l]`` holds the non-negative values of layer l's items (w^2), ``item_costs[l]``
    the cost of each of them (b_l * u_l > 0). ValueError when the reserved items alone
    exceed the budget."""
    budget = _check_budget(budget)
    if len(values) != len(item_costs) or not values:
        raise ValueError(f"need one cost per layer: {len(values)} value arrays, {len(item_costs)} costs")
    costs = np.asarray(item_costs, dtype=np.float64)
    if not np.all(np.isfinite(costs)) or np.any(costs <= 0):
        raise ValueError(f"item_costs={list(item_costs)} must be positive finite numbers")
    flat = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    if any(np.any(~np.isfinite(v)) or np.any(v < 0) for v in flat):
        raise ValueError("values must be finite and non-negative (squared weights)")
    reserved = _reserved_items(flat, min_per_layer)
    reserved_cost = float(sum(len(r) * c for r, c in zip(reserved, costs)))
    if reserved_cost > budget:
        raise ValueError(f"budget={budget:.6g} cannot keep {min_per_layer} weight(s) per layer: that alone costs "
                         f"{reserved_cost:.6g}")
    keep = [np.zeros(v.size, dtype=bool) for v in flat]
    for layer_keep, layer_reserved in zip(keep, reserved):
        layer_keep[layer_reserved] = True
    # The global greedy order over the remaining items: value per unit of cost, highest first.
    offsets = np.cumsum([0] + [v.size for v in flat])
    ratio = np.concatenate([v / c for v, c in zip(flat, costs)])
    cost = np.concatenate([np.full(v.size, c) for v, c in zip(flat, costs)])
    free = ~np.concatenate(keep)
    candidates = np.flatnonzero(free)
    order = candidates[np.argsort(-ratio[candidates], kind="stable")]
    affordable = np.searchsorted(np.cumsum(cost[order]), budget - reserved_cost, side="right")
    chosen = np.zeros(offsets[-1], dtype=bool)
    chosen[order[:affordable]] = True
    return [layer_keep | chosen[start:end] for layer_keep, start, end in zip(keep, offsets[:-1], offsets[1:])]


def _hull_steps(costs: np.ndarray, distortions: np.ndarray) -> list[tuple[int, int, float, float]]:
    """Upgrades along the lower convex hull of one layer's (cost, distortion) choices, from
    its cheapest choice: (from choice, to choice, distortion saved, extra cost)."""
    order = np.lexsort((distortions, costs))  # by cost, then distortion
    hull = [int(order[0])]
    for index in order[1:]:
        index = int(index)
        if distortions[index] >= distortions[hull[-1]] or costs[index] == costs[hull[-1]]:
            continue  # dominated: costs no less and saves nothing
        while len(hull) >= 2:  # drop the last point if it lies on or above the new chord
            a, b = hull[-2], hull[-1]
            slope_ab = (distortions[a] - distortions[b]) / (costs[b] - costs[a])
            slope_ai = (distortions[a] - distortions[index]) / (costs[index] - costs[a])
            if slope_ai >= slope_ab:
                hull.pop()
            else:
                break
        hull.append(index)
    return [(a, b, float(distortions[a] - distortions[b]), float(costs[b] - costs[a]))
            for a, b in zip(hull[:-1], hull[1:])]


def bits_knapsack(distortions: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """One choice per layer (row) minimising total distortion with total cost <= budget.

    ``distortions`` and ``costs`` are (layers, choices) arrays. Returns the chosen column per
    layer. ValueError when even the cheapest choice of every layer exceeds the budget."""
    budget = _check_budget(budget)
    distortions = np.asarray(distortions, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    if distortions.ndim != 2 or distortions.shape != costs.shape or distortions.size == 0:
        raise ValueError(f"distortions {distortions.shape} and costs {costs.shape} must be equal, non-empty 2-D arrays")
    if not (np.all(np.isfinite(distortions)) and np.all(np.isfinite(costs)) and np.all(costs >= 0)):
        raise ValueError("distortions must be finite and costs finite and non-negative")
    steps_per_layer = [_hull_steps(c, d) for c, d in zip(costs, distortions)]
    choice = np.array([steps[0][0] if steps else int(np.lexsort((d, c))[0])
                       for steps, c, d in zip(steps_per_layer, costs, distortions)])
    spent = float(costs[np.arange(len(choice)), choice].sum())
    if spent > budget:
        raise ValueError(f"budget={budget:.6g} is below the cheapest choice of every layer ({spent:.6g})")
    # Within a layer the hull's efficiencies decrease, so a stable sort keeps each layer's
    # upgrades in chain order; a layer whose next upgrade does not fit stops there.
    steps = [(saved / extra, layer, position) for layer, layer_steps in enumerate(steps_per_layer)
             for position, (_, _, saved, extra) in enumerate(layer_steps)]
    steps.sort(key=lambda step: -step[0])
    finished: set[int] = set()
    for _, layer, position in steps:
        if layer in finished:
            continue
        start, end, _, extra = steps_per_layer[layer][position]
        if spent + extra > budget:
            finished.add(layer)
            continue
        choice[layer], spent = end, spent + extra
    return choice
