"""Hardware budgets: ``metric=value`` texts, their absolute limits and the violation of a cost.

Forms accepted by ``parse_budget`` (metric names or their aliases, see ``METRIC_ALIASES``):

  bops=4.5e6           absolute, in the metric's units (BOPs, bits, pJ, seconds)
  bops=1/512           fraction of the uniform-float (fp32) reference
  bops=0.02xfp32       the same, written as a multiple of the reference
  bops=1/128xint8      fraction of the uniform w8a8 (int8) reference
  size=1/100           size -> size_bits; energy -> energy_pj; latency -> latency_s
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from .cost import COST_METRICS, REFERENCES, reference_costs
from .specs import LayerSpec
from .targets import Target
from .checks import is_finite_number, is_number

METRIC_ALIASES = {
    **{metric: metric for metric in COST_METRICS},
    "size": "size_bits",
    "size_honest": "size_bits_honest",
    "energy": "energy_pj",
    "latency": "latency_s",
}
VALID_FORMS = "metric=NUMBER (absolute), metric=A/B or metric=FxREF (fraction of REF in {fp32, int8}; A/B alone means fp32), e.g. bops=1/512, bops=0.02xfp32, size=1/100, bops=1/128xint8, bops=4.5e6"
_VALUE = re.compile(r"^(?P<number>[^/x×]+)(?:/(?P<denominator>[^/x×]+))?(?:[x×](?P<reference>\w+))?$")


@dataclass(frozen=True)
class Budget:
    """A limit on one cost metric: absolute, or ``value`` times a reference's cost."""

    metric: str
    value: float
    relative: bool
    text: str = ""
    reference: str = "fp32"

    def __post_init__(self) -> None:
        if self.metric not in COST_METRICS:
            raise ValueError(f"budget metric {self.metric!r} is not valid; valid choices: {list(COST_METRICS)}")
        if self.reference not in REFERENCES:
            raise ValueError(f"budget reference {self.reference!r} is not valid; valid choices: {list(REFERENCES)}")
        if not is_number(self.value):
            raise ValueError(f"budget value {self.value!r} must be a positive number")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"budget value {self.value!r} must be a positive finite number")


def _positive_number(text: str, budget_text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"budget {budget_text!r}: {text!r} is not a number; valid forms: {VALID_FORMS}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"budget {budget_text!r}: {text!r} must be a positive finite number; valid forms: {VALID_FORMS}")
    return value


def parse_budget(text: str) -> Budget:
    """Parse ``metric=value`` (see the module docstring). ValueError naming the valid forms."""
    if not isinstance(text, str) or text.count("=") != 1:
        raise ValueError(f"budget {text!r} is not of the form metric=value; valid forms: {VALID_FORMS}")
    metric_text, value_text = (part.strip() for part in text.split("="))
    metric = METRIC_ALIASES.get(metric_text.lower())
    if metric is None:
        raise ValueError(f"budget {text!r}: unknown metric {metric_text!r}; valid metrics: {sorted(METRIC_ALIASES)}")
    match = _VALUE.match(value_text.replace(" ", "").lower())
    if match is None:
        raise ValueError(f"budget {text!r}: cannot read value {value_text!r}; valid forms: {VALID_FORMS}")
    value = _positive_number(match["number"], text)
    if match["denominator"] is not None:
        value /= _positive_number(match["denominator"], text)
    reference = match["reference"]
    if reference is not None and reference not in REFERENCES:
        raise ValueError(f"budget {text!r}: unknown reference {reference!r}; valid choices: {list(REFERENCES)}")
    relative = reference is not None or match["denominator"] is not None
    return Budget(metric=metric, value=value, relative=relative, text=text.strip(), reference=reference or "fp32")


def budget_limit(budget: Budget, specs: Sequence[LayerSpec], target: Target | str) -> float:
    """The budget in the metric's own units (relative budgets scale the reference's cost)."""
    if not budget.relative:
        return float(budget.value)
    return budget.value * reference_costs(specs, target, budget.reference)[budget.metric]


def violation(cost: float, limit: float) -> float:
    """Relative excess over the limit, max(0, cost / limit - 1): 0 means within budget; a cost
    that is not a finite number (a failed trial) is infinitely far over it. The one place a
    violation is computed: trials, the population, ADMM and the run tables all call this."""
    if not (is_finite_number(limit) and limit > 0):
        raise ValueError(f"budget limit {limit!r} must be a positive finite number")
    if not is_finite_number(cost):
        return math.inf
    return max(0.0, cost / limit - 1.0)


def budget_violation(costs: dict, budget: Budget, limit: float) -> float:
    """``violation`` of the budget's metric in a cost table (hardware.cost.total_costs)."""
    if budget.metric not in costs:
        raise ValueError(f"costs have no {budget.metric!r}; they have {sorted(costs)}")
    return violation(costs[budget.metric], limit)
