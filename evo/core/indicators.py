"""Quality indicators of a result set: the hypervolume of the feasible (accuracy, cost) points.

Pure: no torch, no Ray.
"""

from __future__ import annotations

import math
from typing import Iterable

import moocore
import numpy

from hardware.checks import check_positive


def hypervolume(points: Iterable[tuple[float, float]], limit: float) -> float:
    """Area dominated by the feasible (accuracy, cost) points in the (-accuracy, cost/limit)
    plane, up to the reference point (0, 1): accuracy 0 at a cost of the whole budget.

    Uses moocore, the hypervolume backend of DEAP 1.4 (``deap.tools.indicator``); DEAP 1.4
    no longer ships ``deap.tools._hypervolume``.
    """
    check_positive("limit", limit)
    feasible = [(-float(accuracy), float(cost) / limit) for accuracy, cost in points
                if math.isfinite(accuracy) and math.isfinite(cost) and cost <= limit]
    if not feasible:
        return 0.0
    return float(moocore.hypervolume(numpy.array(feasible), ref=numpy.array([0.0, 1.0])))
