import copy
import math
import random

import pytest
from deap import base, tools

from evo.core.selection import ConstrainedFitness, _individuals, constrained_dominates, pareto_front, ranked_fronts, survive, tournament
from evo.core.indicators import hypervolume

INF, NAN = math.inf, math.nan


def fit(accuracy, cost, violation=0.0):
    return ConstrainedFitness((accuracy, cost), violation)


@pytest.mark.parametrize(
    "a, b, a_wins, b_wins",
    [
        ((0.9, 1.0, 0.0), (0.8, 2.0, 0.0), True, False),  # better on both objectives
        ((0.9, 1.0, 0.0), (0.9, 2.0, 0.0), True, False),  # better on one, equal on the other
        ((0.9, 2.0, 0.0), (0.8, 1.0, 0.0), False, False),  # a trade-off
        ((0.9, 1.0, 0.0), (0.9, 1.0, 0.0), False, False),  # equal
        ((0.5, 5.0, 0.0), (0.99, 0.1, 0.2), True, False),  # feasible beats better-looking infeasible
        ((0.1, 9.0, 0.1), (0.9, 1.0, 0.5), True, False),  # smaller violation wins
        ((0.1, 9.0, 0.3), (0.9, 1.0, 0.3), False, False),  # equal violation: neither
        ((0.9, 1.0, INF), (0.1, 9.0, 3.0), False, True),  # failed loses to any finite violation
        ((0.9, 1.0, INF), (0.1, 9.0, INF), False, False),  # two failures
        ((NAN, 1.0, 0.0), (0.1, 9.0, 0.0), False, True),  # NaN accuracy = failed
        ((0.9, NAN, 0.0), (0.1, 9.0, 0.5), False, True),  # NaN cost = failed
        ((0.9, INF, 0.0), (0.1, 9.0, 0.0), False, True),  # infinite cost = failed
        ((0.9, 1.0, NAN), (0.1, 9.0, 9.0), False, True),  # NaN violation = failed
        ((NAN, 1.0, 0.0), (NAN, 2.0, 0.0), False, False),  # two NaN results
    ],
)
def test_constrained_dominance(a, b, a_wins, b_wins):
    fa, fb = fit(*a), fit(*b)
    assert constrained_dominates(fa, fb) is a_wins and fa.dominates(fb) is a_wins
    assert constrained_dominates(fb, fa) is b_wins and fb.dominates(fa) is b_wins


def test_fitness_is_a_deap_fitness_that_keeps_its_violation():
    fitness = fit(0.8, 2.0, 0.25)
    assert isinstance(fitness, base.Fitness) and fitness.weights == (1.0, -1.0)
    assert fitness.values == (0.8, 2.0) and fitness.wvalues == (0.8, -2.0)
    clone = copy.deepcopy(fitness)
    assert clone.violation == 0.25 and clone.values == (0.8, 2.0)
    assert fit(NAN, 1.0).violation == INF and not fit(NAN, 1.0).feasible and fit(0.1, 1.0).feasible


def test_negative_violation_raises():
    with pytest.raises(ValueError, match="violation=-0.1"):
        fit(0.5, 1.0, -0.1)


def test_deap_constrained_fitness_pitfall_feasible_survives():
    # DEAP's own ConstrainedFitness was seen letting an evaluated infeasible result win
    evaluated = [("infeasible", 0.99, 0.1, 0.4), ("feasible", 0.2, 5.0, 0.0)]
    assert [item[0] for item in survive(evaluated, 1)] == ["feasible"]


def random_results(rng, n):
    return [
        ((i,), NAN if rng.random() < 0.1 else round(rng.random(), 2), round(rng.uniform(0, 2), 2),
         rng.choice([0.0, 0.0, 0.0, round(rng.random(), 1), INF]))
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_no_member_of_a_rank_dominates_another_after_survive(seed):
    rng = random.Random(seed)
    evaluated = random_results(rng, 60)
    survivors = survive(evaluated, 30)
    assert len(survivors) == 30 and len({s[0] for s in survivors}) == 30
    assert all(any(s is e for e in evaluated) for s in survivors)  # the caller's own objects
    fronts = ranked_fronts(survivors)
    assert sum(map(len, fronts)) == 30
    for rank, front in enumerate(fronts):
        members = _individuals(front)
        assert not any(a.fitness.dominates(b.fitness) for a in members for b in members)
        if rank:  # everything in a worse rank is dominated by something in the rank before
            previous = _individuals(fronts[rank - 1])
            assert all(any(p.fitness.dominates(m.fitness) for p in previous) for m in members)


@pytest.mark.parametrize("seed", range(5))
def test_survive_prefers_feasible_then_smaller_violation(seed):
    rng = random.Random(seed)
    evaluated = random_results(rng, 40)
    feasible = sum(1 for item in evaluated if fit(*item[1:4]).feasible)
    survivors = survive(evaluated, feasible + 2)
    assert sum(1 for item in survivors if fit(*item[1:4]).feasible) == feasible
    infeasible = sorted(fit(*item[1:4]).violation for item in evaluated if not fit(*item[1:4]).feasible)
    kept = sorted(fit(*item[1:4]).violation for item in survivors if not fit(*item[1:4]).feasible)
    assert kept == infeasible[:2]


def test_survive_keeps_everything_when_k_is_large_and_checks_k():
    evaluated = [((0,), 0.5, 1.0, 0.0), ((1,), 0.4, 0.5, 0.0)]
    assert sorted(survive(evaluated, 5)) == sorted(evaluated)
    with pytest.raises(ValueError, match="k=-1"):
        survive(evaluated, -1)


def test_pareto_front_keeps_feasible_non_dominated_and_ties():
    evaluated = [
        ("cheap", 0.5, 1.0, 0.0), ("dear", 0.9, 3.0, 0.0), ("dominated", 0.4, 2.0, 0.0),
        ("tie", 0.5, 1.0, 0.0), ("over budget", 0.99, 0.5, 0.1), ("failed", NAN, 0.1, 0.0),
        ("same cost worse", 0.45, 1.0, 0.0),
    ]
    assert [item[0] for item in pareto_front(evaluated)] == ["cheap", "tie", "dear"]
    assert pareto_front([("x", 0.9, 1.0, 0.5)]) == [] and pareto_front([]) == []


@pytest.mark.parametrize("seed", range(30))
def test_pareto_front_matches_deap_first_front(seed):
    rng = random.Random(seed)
    evaluated = [((i,), rng.choice([0.1, 0.2, 0.3, NAN]), rng.choice([1, 2, 3]), rng.choice([0.0, 0.0, 0.5]))
                 for i in range(rng.randint(0, 15))]
    feasible = [ind for ind in _individuals(evaluated) if ind.fitness.feasible]
    expected = {ind.item for ind in tools.sortNondominated(feasible, len(feasible), True)[0]} if feasible else set()
    assert set(pareto_front(evaluated)) == expected


def test_hypervolume_by_hand():
    limit = 10.0
    # one point: accuracy 0.8 at 25% of the budget -> 0.8 * 0.75
    assert hypervolume([(0.8, 2.5)], limit) == pytest.approx(0.6)
    # two points: 0.9 x 0.5 + 0.5 x 0.8 - overlap 0.5 x 0.5 = 0.6
    assert hypervolume([(0.9, 5.0), (0.5, 2.0)], limit) == pytest.approx(0.6)
    # three points, by cost slices: 0.4 x 0.2 + 0.7 x 0.3 + 0.9 x 0.4 = 0.65
    three = [(0.9, 6.0), (0.7, 3.0), (0.4, 1.0)]
    assert hypervolume(three, limit) == pytest.approx(0.65)
    # infeasible, failed and dominated points add nothing
    assert hypervolume(three + [(0.99, 11.0), (NAN, 0.5), (0.3, 8.0), (0.95, INF)], limit) == pytest.approx(0.65)


def test_hypervolume_of_nothing_is_zero_and_limit_is_checked():
    assert hypervolume([], 1.0) == 0.0
    assert hypervolume([(0.9, 2.0)], 1.0) == 0.0
    for bad in (0, -1, NAN, INF):
        with pytest.raises(ValueError, match="limit"):
            hypervolume([(0.5, 0.5)], bad)


def test_tournament_never_picks_a_result_that_everything_dominates():
    population = [((i,), 0.5 + i / 100, 1.0 - i / 100, 0.0) for i in range(1, 8)] + [((0,), 0.1, 5.0, 0.0)]
    for seed in range(20):
        chosen = tournament(population, 16, random.Random(seed))
        assert len(chosen) == 16 and ((0,), 0.1, 5.0, 0.0) not in chosen


def test_tournament_is_reproducible_and_leaves_global_random_alone():
    population = random_results(random.Random(3), 13)
    random.seed(0)
    before = random.getstate()
    first = tournament(population, 21, random.Random(5))
    assert first == tournament(population, 21, random.Random(5)) and len(first) == 21
    assert random.getstate() == before
    assert any(tournament(population, 21, random.Random(s)) != first for s in range(6, 10))


def test_tournament_works_on_tiny_populations_and_checks_input():
    population = [((0,), 0.5, 1.0, 0.0), ((1,), 0.6, 2.0, 0.0)]
    assert set(tournament(population, 5, random.Random(0))) <= set(population)
    assert tournament(population, 0, random.Random(0)) == []
    with pytest.raises(ValueError, match="non-empty"):
        tournament([], 2, random.Random(0))
