"""Selection: constrained dominance, NSGA-II survival, Pareto front, hypervolume, tournament.

Two objectives: maximise validation accuracy, minimise cost. A third number, ``violation``,
says how far over the budget a result is: 0 feasible, > 0 over budget, inf for a failed or
NaN trial. Dominance is constrained (Deb 2000): a feasible result beats an infeasible one,
of two infeasible ones the smaller violation wins, and two feasible ones compare by Pareto
dominance. DEAP's ``base.ConstrainedFitness`` is not used: it stops counting violations
once an individual is evaluated (DESIGN.md, "Known pitfalls"). ``ConstrainedFitness`` below
overrides ``dominates`` so that DEAP's ``selTournamentDCD`` (and ``sortNondominated``, the
reference the fast sort is tested against) run unchanged with constrained dominance. The fronts themselves come from ``evo.core.fronts``, an
O(n log n) two-objective sort giving exactly DEAP's fronts (DEAP's sort is O(n^2): minutes
per generation at 10,000 genomes); crowding distance and the tournament are DEAP's.

An "evaluated" item is any sequence whose first four items are
``(genome, accuracy, cost, violation)`` (a tuple, or ``evo.core.population.Evaluation``); the
functions return the items they were given.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import itertools
import math
import random
from operator import attrgetter
from typing import Iterable, Sequence, TypeVar

from deap import base, tools
from deap.tools.emo import assignCrowdingDist  # not exported by deap.tools

from evo.core.fronts import sort_fronts
from evo.core.genome import Individual
from evo.core.variation import deap_rng
from hardware.checks import check_int

Evaluated = TypeVar("Evaluated", bound=Sequence)


def constrained_dominates(a: "ConstrainedFitness", b: "ConstrainedFitness", obj=slice(None)) -> bool:
    """Feasible beats infeasible; two infeasible: smaller violation; two feasible: Pareto."""
    if a.violation or b.violation:  # at least one over budget (violation > 0 or inf)
        return a.violation < b.violation
    # Pareto dominance on weighted values, as base.Fitness.dominates, inlined (DEAP's
    # tournament and sortNondominated call it once per comparison)
    better = False
    for mine, theirs in zip(a.wvalues[obj], b.wvalues[obj]):
        if mine < theirs:
            return False
        better = better or mine > theirs
    return better


class ConstrainedFitness(base.Fitness):
    """(accuracy, cost) fitness with a constraint ``violation``; NaN anywhere => violation inf."""

    weights = (1.0, -1.0)

    def __init__(self, values: Sequence[float] = (), violation: float = 0.0):
        violation = float(violation)
        if violation < 0:
            raise ValueError(f"violation={violation!r} must be >= 0 (0 = within budget, inf = failed)")
        if values and not all(math.isfinite(float(v)) for v in values):
            # a NaN or inf objective cannot be ranked: the result counts as failed, and its
            # objectives become 0 so hashing, equality and crowding distance stay well defined
            values, violation = (0.0, 0.0), math.inf
        if math.isnan(violation):
            violation = math.inf
        super().__init__(tuple(float(v) for v in values))
        self.violation = violation

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0

    dominates = constrained_dominates

    # DEAP's sortNondominated (the reference evo.core.fronts is tested against) keys dicts by fitness.
    # base.Fitness hashes and compares wvalues only, which would merge results that differ in
    # violation; identity keeps them apart and gives the same fronts (equal fitnesses never
    # dominate each other)
    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__

    def __deepcopy__(self, memo) -> "ConstrainedFitness":
        copy = self.__class__()
        copy.wvalues, copy.violation = self.wvalues, self.violation
        return copy

    def __repr__(self) -> str:
        return f"ConstrainedFitness(values={self.values}, violation={self.violation})"


def _individuals(evaluated: Iterable[Evaluated]) -> list[Individual]:
    individuals = []
    for item in evaluated:
        genome, accuracy, cost, violation = item[:4]
        individual = Individual(genome, ConstrainedFitness((accuracy, cost), violation))
        individual.item = item  # the caller gets back exactly what it passed in
        individuals.append(individual)
    return individuals


def _fronts(individuals: list[Individual], k: int | None = None) -> list[list[Individual]]:
    """``tools.sortNondominated(individuals, k)``'s fronts, from the O(n log n) sort."""
    objectives = [(*ind.fitness.values, ind.fitness.violation) if ind.fitness.values else (0.0, 0.0, math.inf)
                  for ind in individuals]
    return [[individuals[i] for i in front] for front in sort_fronts(objectives, k)]


def survive(evaluated: Sequence[Evaluated], k: int) -> list[Evaluated]:
    """NSGA-II survival: the ``k`` best by constrained non-domination rank, then crowding distance.

    ``tools.selNSGA2``'s choice, over the fast fronts.
    """
    check_int("k", k, minimum=0)
    fronts = _fronts(_individuals(evaluated), k)
    chosen = list(itertools.chain(*fronts[:-1]))
    rest = k - len(chosen)
    if rest > 0 and fronts:  # only the last front is cut, so only it needs crowding distances
        assignCrowdingDist(fronts[-1])
        chosen.extend(sorted(fronts[-1], key=attrgetter("fitness.crowding_dist"), reverse=True)[:rest])
    return [individual.item for individual in chosen]


def ranked_fronts(evaluated: Sequence[Evaluated]) -> list[list[Evaluated]]:
    """All constrained non-domination fronts, best first."""
    return [[individual.item for individual in front] for front in _fronts(_individuals(evaluated))]


def pareto_front(evaluated: Sequence[Evaluated]) -> list[Evaluated]:
    """The feasible results that no other feasible result dominates, cheapest first.

    A sort-and-sweep (O(n log n)) rather than DEAP's O(n^2) first front: the archive front is
    refreshed every generation over thousands of results. Equal results all stay.
    """
    feasible = [ind for ind in _individuals(evaluated) if ind.fitness.feasible]
    feasible.sort(key=lambda ind: (ind.fitness.values[1], -ind.fitness.values[0]))
    front, best_accuracy = [], -math.inf
    for _, same_cost in itertools.groupby(feasible, key=lambda ind: ind.fitness.values[1]):
        same_cost = list(same_cost)
        top = same_cost[0].fitness.values[0]  # sorted: the most accurate at this cost comes first
        if top > best_accuracy:  # nothing cheaper is as accurate
            front.extend(ind.item for ind in same_cost if ind.fitness.values[0] == top)
            best_accuracy = top
    return front


def tournament(population: Sequence[Evaluated], k: int, rng: random.Random) -> list[Evaluated]:
    """``k`` binary-tournament winners (DEAP ``selTournamentDCD``): constrained dominance
    first, then the larger crowding distance within a front, then a coin flip from ``rng``."""
    check_int("k", k, minimum=0)
    if not population:
        raise ValueError("tournament needs a non-empty population")
    individuals = _individuals(population)
    for front in _fronts(individuals):
        assignCrowdingDist(front)
    # selTournamentDCD draws in blocks of four and needs a multiple of four when it takes
    # the whole list, so repeat tiny populations and ask for whole blocks
    while len(individuals) < 4:
        individuals = individuals + individuals
    block = len(individuals) - len(individuals) % 4
    chosen: list[Individual] = []
    with deap_rng(rng):
        while len(chosen) < k:
            chosen.extend(tools.selTournamentDCD(individuals, block))
    return [individual.item for individual in chosen[:k]]
