"""Offspring pre-screen: a surrogate fitted on the run's own results chooses which bred children
are trained.

The surrogate is the per-layer sensitivity's predicted distortion (``evo.core.sensitivity``), a
genome's weight entries plus ``alpha`` times its activation entries. The float model's loss
increase underestimates what low-bit activations cost a fine-tuned policy (measured on the
own-model example), so ``alpha`` is fitted on the run: of ``ACTIVATION_WEIGHTS``, the one whose
predicted distortion ranks the run's screened validation accuracies best (Spearman). A fit whose
best Spearman is below ``MIN_SPEARMAN`` is not trusted, and the children are taken as bred.

``choose`` gets ``OVERSAMPLE`` times more children than a generation trains and keeps
``k`` of them by NSGA-II survival (``evo.core.selection.survive``) on (predicted distortion,
cost): the least distorted at each cost, spread along the cost axis by crowding distance.
No training happens in the pre-screen; cost is exact, the distortion a prediction.

No torch, no Ray (pandas ranks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from evo.core.selection import survive
from evo.core.sensitivity import Sensitivity

OVERSAMPLE = 3  # children bred per slot a generation trains
ACTIVATION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
MIN_SPEARMAN = 0.5  # below it the fitted surrogate is not trusted (children taken as bred)
MIN_RESULTS = 6  # results needed before a fit is tried


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (pandas' own, ties at their mean rank); NaN when a side is constant."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"spearman needs two sequences of one length >= 2; got {len(xs)} and {len(ys)}")
    return float(pd.DataFrame({"x": list(xs), "y": list(ys)}).corr(method="spearman").iloc[0, 1])


@dataclass(frozen=True)
class Fit:
    alpha: float  # weight of the activation entries
    spearman: float  # of -distortion against the results' accuracies
    results: int  # how many results it was fitted on

    @property
    def trusted(self) -> bool:
        return self.spearman >= MIN_SPEARMAN


def fit(sensitivity: Sensitivity, results: Sequence[tuple[Sequence[int], float]]) -> Fit | None:
    """The activation weight whose predicted distortion ranks ``results`` ((genome, validation
    accuracy) pairs, finite accuracies only) best; None with fewer than ``MIN_RESULTS`` of them
    or when no weight gives a defined correlation."""
    usable = [(tuple(genome), float(accuracy)) for genome, accuracy in results if math.isfinite(accuracy)]
    if len(usable) < MIN_RESULTS:
        return None
    parts = [sensitivity.parts(genome) for genome, _ in usable]
    accuracies = [accuracy for _, accuracy in usable]
    best = None
    for alpha in ACTIVATION_WEIGHTS:
        rho = spearman([-(weight + alpha * activation) for weight, activation in parts], accuracies)
        if math.isfinite(rho) and (best is None or rho > best.spearman):
            best = Fit(alpha, rho, len(usable))
    return best


def choose(children: Sequence[tuple[int, ...]], k: int, sensitivity: Sensitivity, fitted: Fit | None,
           cost_fn: Callable[[tuple[int, ...]], float]) -> list[tuple[int, ...]]:
    """``k`` of ``children`` (distinct genomes within the budget), in their bred order: by NSGA-II
    survival on (predicted distortion under ``fitted``, cost) when the fit is trusted, else the
    first ``k`` as bred."""
    children = list(dict.fromkeys(tuple(c) for c in children))
    if len(children) <= k:
        return children
    if fitted is None or not fitted.trusted:
        return children[:k]
    scored = []
    for child in children:
        weight, activation = sensitivity.parts(child)
        scored.append((child, -(weight + fitted.alpha * activation), float(cost_fn(child)), 0.0))
    kept = {item[0] for item in survive(scored, k)}
    return [child for child in children if child in kept]
