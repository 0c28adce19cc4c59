"""The O(n log n) constrained sort against DEAP's O(n^2) sortNondominated, and NSGA-II survival
over it against DEAP's selNSGA2."""

import math
import random
import time

import pytest
from deap import tools
from deap.tools.emo import assignCrowdingDist

from evo.core.fronts import sort_fronts
from evo.core.selection import _individuals, ranked_fronts, survive


def random_results(rng: random.Random, n: int) -> list[tuple]:
    """(name, accuracy, cost, violation) with many ties: accuracies on a 1/50 grid, costs on a
    small grid, repeated points, infeasible results sharing violations, failed ones."""
    results = []
    for i in range(n):
        accuracy = rng.randrange(50) / 50
        cost = float(rng.randrange(1, 12))
        violation = rng.choice([0.0] * 6 + [0.5, 0.5, 1.5, math.inf])
        results.append((f"g{i}", accuracy, cost, violation))
    if n > 3:
        results.append(("dup",) + results[1][1:])  # an exact duplicate of another's fitness
    return results


def deap_fronts(results, k=None):
    individuals = _individuals(results)
    fronts = tools.sortNondominated(individuals, len(individuals) if k is None else k)
    return [sorted(ind.item[0] for ind in front) for front in fronts if front]


def fast_fronts(results, k=None):
    objectives = [item[1:4] for item in results]
    return [sorted(results[i][0] for i in front) for front in sort_fronts(objectives, k)]


@pytest.mark.parametrize("seed", range(40))
def test_fronts_equal_deaps(seed):
    rng = random.Random(seed)
    results = random_results(rng, rng.randrange(1, 120))
    assert fast_fronts(results) == deap_fronts(results)
    k = rng.randrange(1, len(results) + 3)
    assert fast_fronts(results, k) == deap_fronts(results, k)
    assert [sorted(item[0] for item in front) for front in ranked_fronts(results)] == deap_fronts(results)


def test_fronts_on_a_hand_made_case():
    results = [
        ("a", 0.9, 4.0, 0.0), ("b", 0.8, 2.0, 0.0), ("c", 0.8, 3.0, 0.0),  # c: b is as accurate, cheaper
        ("d", 0.8, 2.0, 0.0),  # equal to b: same front
        ("e", 0.95, 1.0, 0.3), ("f", 0.1, 1.0, 0.3), ("g", 0.99, 0.5, 0.1),  # over budget
        ("h", 0.99, 0.1, math.inf),  # failed
        ("i", 0.7, 3.5, 0.0),  # dominated by b (and c)
    ]
    assert fast_fronts(results) == [["a", "b", "d"], ["c"], ["i"], ["g"], ["e", "f"], ["h"]]
    assert fast_fronts(results, 4) == [["a", "b", "d"], ["c"]]
    assert fast_fronts(results, 0) == [] and fast_fronts([]) == []


@pytest.mark.parametrize("seed", range(25))
def test_survive_matches_selnsga2_up_to_crowding_ties(seed):
    rng = random.Random(100 + seed)
    results = random_results(rng, rng.randrange(2, 90))
    k = rng.randrange(0, len(results) + 2)
    ours = survive(results, k)
    theirs = [ind.item for ind in tools.selNSGA2(_individuals(results), k)]
    assert len(ours) == len(theirs) == min(k, len(results))
    fronts = deap_fronts(results, k)
    whole = {name for front in fronts[:-1] for name in front}
    assert whole <= {item[0] for item in ours} and whole <= {item[0] for item in theirs}
    if fronts and len(ours) > len(whole):
        # from the last front, both take members of the same crowding distances
        last = [ind for ind in _individuals(results) if ind.item[0] in set(fronts[-1])]
        assignCrowdingDist(last)
        distance = {ind.item[0]: ind.fitness.crowding_dist for ind in last}
        assert sorted(distance[item[0]] for item in ours if item[0] not in whole) == \
            sorted(distance[item[0]] for item in theirs if item[0] not in whole)


def test_survival_at_ten_thousand_is_fast_enough_to_run_here():
    # 20,000 results (parents + offspring of a population of 10,000) sorted in well under a
    # second; DEAP's pairwise sort took minutes. Not a timing assertion: the bound is 60x slack.
    rng = random.Random(0)
    results = [((i,), rng.random(), rng.random(), 0.0 if rng.random() < 0.8 else rng.random()) for i in range(20_000)]
    start = time.perf_counter()
    survivors = survive(results, 10_000)
    assert len(survivors) == 10_000 and time.perf_counter() - start < 60
