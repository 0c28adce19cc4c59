"""Constrained non-dominated sorting for two objectives in O(n log n).

DEAP's ``tools.sortNondominated`` compares every pair: O(n^2) dominance tests, which made
NSGA-II survival take 90-229 s per generation at a population of 10,000 (benchmarks/scaling.py).
With two objectives (maximise accuracy, minimise cost) the fronts follow from one sort:

* feasible results (violation 0) come first. Taken by cost ascending (equal cost: accuracy
  descending), a result is dominated by some member of a front iff it is dominated by the
  front's most recently added member, and if front j dominates it so does every front before
  j; a binary search over the fronts places each result (Jensen 2003; Zhang et al., ENS-BS).
* infeasible results follow, one front per distinct violation, smallest first: constrained
  dominance (Deb 2000) ranks them by violation alone, failed trials (inf) last.

The fronts are exactly DEAP's (tested against ``sortNondominated`` with ``ConstrainedFitness``).
Each front lists its members in input order, so ties in crowding distance break by input
order (DEAP lists its later fronts in the order its counters reach zero instead).

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Sequence


def sort_fronts(objectives: Sequence[tuple[float, float, float]], k: int | None = None) -> list[list[int]]:
    """Indices of ``(accuracy, cost, violation)`` triples grouped in constrained fronts, best first.

    Stops after the front that brings the count to ``k`` or more (all fronts when ``k`` is None),
    as ``sortNondominated(individuals, k)`` does.
    """
    limit = len(objectives) if k is None else min(k, len(objectives))
    if limit <= 0:
        return []
    feasible = [i for i, (_, _, violation) in enumerate(objectives) if violation == 0]
    fronts = _feasible_fronts(objectives, feasible)
    taken = 0
    for count, front in enumerate(fronts, start=1):
        taken += len(front)
        if taken >= limit:
            return [sorted(front) for front in fronts[:count]]
    infeasible = sorted((i for i, item in enumerate(objectives) if item[2] != 0), key=lambda i: objectives[i][2])
    result = [sorted(front) for front in fronts]
    for _, group in itertools.groupby(infeasible, key=lambda i: objectives[i][2]):
        front = sorted(group)
        result.append(front)
        taken += len(front)
        if taken >= limit:
            break
    return result


def _feasible_fronts(objectives: Sequence[tuple[float, float, float]], indices: list[int]) -> list[list[int]]:
    order = sorted(indices, key=lambda i: (objectives[i][1], -objectives[i][0]))
    fronts: list[list[int]] = []
    # Per front, the key (-accuracy, cost) of its last member. Taken by cost ascending, a front's
    # last member dominates the next point p iff its key is smaller than p's (more accurate, or as
    # accurate and cheaper); the keys grow strictly with the front number, so the first front
    # that does not dominate p is a binary search away.
    last: list[tuple[float, float]] = []
    for i in order:
        key = (-objectives[i][0], objectives[i][1])
        j = bisect.bisect_left(last, key)
        if j == len(fronts):
            fronts.append([])
            last.append(key)
        fronts[j].append(i)
        last[j] = key
    return fronts
