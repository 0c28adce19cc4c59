"""Successive halving inside a generation (evo.core.rungs, evo.core.population): rung sizes and
steps, promotion of the best of a rung, and no ranking across fidelities."""

import math

import pytest

from evo.core.population import FINISHED, Population
from evo.core.rungs import check_rungs, promoted_count, rung_steps, screen_size
from evo.core.space import SearchSpace

SPACE = SearchSpace(tuple(f"layer{i}" for i in range(5)))


def score(genome) -> float:
    """A fake, deterministic accuracy in (0, 1) with few ties."""
    return 0.5 + 0.4 * math.sin(sum((i + 1) * g for i, g in enumerate(genome))) ** 2


def low_rung_score(genome) -> float:
    """What a short fine-tune reports: the full score's order reversed, and far above any real
    accuracy, so a low-rung value that reached a ranking would show."""
    return 10.0 - score(genome)


def run(rungs=3, factor=3, population_size=8, generations=3, cost=lambda g: 1.0, limit=2.0):
    population = Population(space=SPACE, cost_fn=cost, limit=limit, population_size=population_size,
                            generations=generations, seed=5, rungs=rungs, rung_factor=factor)
    asks = []  # (generation, rung, genome, reported accuracy), in ask order
    while True:
        item = population.ask()
        if item is FINISHED:
            return population, asks
        assert item is not None, "one at a time: every ask is told before the next"
        reported = score(item.genome) if item.rung == population.top_rung else low_rung_score(item.genome)
        asks.append((item.generation, item.rung, item.genome, reported))
        population.tell(item.ask_id, reported, cost(item.genome))


def test_rung_steps_sizes_and_promotion_counts():
    assert rung_steps(80, 1, 3) == (80,)
    assert rung_steps(80, 2, 3) == (27, 80)
    assert rung_steps(80, 3, 3) == (9, 27, 80)
    assert rung_steps(40, 2, 4) == (10, 40)
    assert screen_size(10, 1, 3) == 10
    assert screen_size(10, 2, 3) == 15
    assert screen_size(10, 3, 3) == 30
    assert screen_size(10, 2, 2) == 10  # never fewer than the population
    assert [promoted_count(n, 3) for n in (0, 1, 3, 4, 30)] == [0, 1, 1, 2, 10]


@pytest.mark.parametrize("rungs, factor", [(2, 3), (3, 3), (2, 6)])
def test_a_generation_costs_about_what_it_costs_without_rungs(rungs, factor):
    steps = rung_steps(90, rungs, factor)
    _, asks = run(rungs=rungs, factor=factor, population_size=12, generations=2)
    for generation in (0, 1):
        samples = sum(steps[rung] for gen, rung, _, _ in asks if gen == generation)
        assert abs(samples / (12 * 90) - 1) <= 0.1, (generation, samples)
        assert sum(1 for gen, rung, _, _ in asks if gen == generation and rung == 0) == screen_size(12, rungs, factor)


def test_each_rung_promotes_the_best_third_of_the_one_below():
    population, asks = run()
    for generation in range(3):
        for rung in (1, 2):
            below = [(a, g) for gen, r, g, a in asks if gen == generation and r == rung - 1]
            here = [g for gen, r, g, _ in asks if gen == generation and r == rung]
            # cost is the same for every genome, so the constrained rank is the reported accuracy
            best = [g for _, g in sorted(below, reverse=True)[:math.ceil(len(below) / 3)]]
            assert sorted(here) == sorted(best)
    assert [sum(1 for gen, r, _, _ in asks if gen == 0 and r == rung) for rung in range(3)] == [24, 8, 3]


def test_only_the_top_rung_is_ranked():
    population, asks = run()
    top = {g: a for _, r, g, a in asks if r == population.top_rung}
    # every low-rung report is >= 9; none may reach survival, the front or the statistics
    assert all(e["accuracy"] < 1 for e in population.parents)
    assert {e["genome"] for e in population.parents} <= set(top)
    assert all(e["accuracy"] == top[e["genome"]] for e in population.front())
    for row in population.generation_stats:
        assert row["best_feasible_accuracy"] < 1 and row["hypervolume"] <= 1
        assert row["top_rung_trials"] == sum(1 for gen, r, _, _ in asks
                                             if gen == row["generation"] and r == population.top_rung)
        assert row["trials"] == sum(1 for gen, _, _, _ in asks if gen == row["generation"])
    assert max(row["best_feasible_accuracy"] for row in population.generation_stats) == max(top.values())
    # the low rungs stay in the history, with their rung, and their genomes are not bred again
    assert {r["rung"] for r in population.history} == {0, 1, 2}
    rung0 = [(gen, g) for gen, r, g, _ in asks if r == 0]
    assert len({g for _, g in rung0}) == len(rung0)


def test_a_failed_low_rung_trial_is_never_promoted():
    population = Population(space=SPACE, cost_fn=lambda g: 1.0, limit=2.0, population_size=4, generations=1,
                            seed=1, rungs=2, rung_factor=2)
    first = []
    while (item := population.ask()) not in (None, FINISHED):
        first.append(item)
    for item in first[:-1]:
        population.tell(item.ask_id, math.nan, 1.0, failed=True)
    population.tell(first[-1].ask_id, 0.3, 1.0)  # the only one that trained
    promoted = population.ask()
    assert promoted.rung == 1 and promoted.genome == first[-1].genome and population.ask() is None
    population.tell(promoted.ask_id, 0.4, 1.0)
    (row,) = population.generation_stats
    assert row["failed"] == len(first) - 1 and row["trials"] == len(first) + 1 and row["top_rung_trials"] == 1


@pytest.mark.parametrize("rungs, factor, steps, message", [
    (0, 3, 80, "rungs=0"), (5, 3, 80, r"rungs=5 must be an integer in \[1, 4\]"), (2, 1, 80, "rung_factor=1"),
    (2, 11, 80, r"rung_factor=11 must be an integer in \[2, 10\]"), (3, 10, 80, "under one step at fine_tune_steps=80"),
    (2.5, 3, 80, "rungs=2.5"), (True, 3, 80, "rungs=True")])
def test_bad_rung_settings_name_the_value(rungs, factor, steps, message):
    with pytest.raises(ValueError, match=message):
        check_rungs(rungs, factor, steps)
