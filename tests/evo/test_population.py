import json
import math

import pytest

from evo.core.initial import least_pruned_uniforms
from evo.core.population import FINISHED, Candidate, Population
from evo.core.selection import ConstrainedFitness, pareto_front
from evo.core.space import SearchSpace

SPACE = SearchSpace(tuple(f"layer{i}" for i in range(5)))
LAYER_WEIGHTS = (1, 2, 3, 4, 5)
FULL_COST = 64 * sum(LAYER_WEIGHTS)  # no pruning, 8/8 bits
LIMIT = 0.15 * FULL_COST


def cost(genome, space=SPACE, weights=LAYER_WEIGHTS):
    tables = space.gene_tables
    return sum(w * (1 - tables[3 * i][genome[3 * i]]) * tables[3 * i + 1][genome[3 * i + 1]]
               * tables[3 * i + 2][genome[3 * i + 2]] for i, w in enumerate(weights))


def accuracy(genome):
    """A fake, deterministic evaluator: bits help, sparsity hurts, more so in early layers."""
    sparsity = sum((5 - i) * genome[3 * i] for i in range(len(genome) // 3))
    bits = sum(genome[1::3]) + 0.5 * sum(genome[2::3])
    return 0.5 + 0.01 * bits - 0.003 * sparsity


def fails(genome):
    return sum(genome) % 11 == 0  # a few trials crash


def make(**overrides):
    options = dict(space=SPACE, cost_fn=cost, limit=LIMIT, population_size=8, generations=4, seed=11)
    options.update(overrides)
    return Population(**options)


def drive(population, asked, told, *, window=3, stop_after=None, with_failures=False):
    """Keep ``window`` candidates in flight and tell the newest first (out of order)."""
    in_flight = []
    while True:
        while len(in_flight) < window:
            item = population.ask()
            if item is None or item is FINISHED:
                break
            asked.append((item.ask_id, item.genome, item.generation))
            in_flight.append(item)
        if not in_flight:
            assert population.ask() is FINISHED, "nothing in flight, so the population must be done"
            return in_flight
        if stop_after is not None and len(told) >= stop_after:
            return in_flight
        candidate = in_flight.pop()
        if with_failures and fails(candidate.genome):
            population.tell(candidate.ask_id, math.nan, population.cost_fn(candidate.genome), failed=True)
        else:
            population.tell(candidate.ask_id, accuracy(candidate.genome), population.cost_fn(candidate.genome))
        told.append(candidate.ask_id)


def test_full_run_bookkeeping():
    population, asked, told = make(), [], []
    drive(population, asked, told)
    assert population.is_finished and population.ask() is FINISHED and population.pending == 0
    assert sorted(told) == sorted(a for a, _, _ in asked) and len(set(told)) == len(told)
    genomes = [g for _, g, _ in asked]
    assert len(set(genomes)) == len(genomes), "a genome was handed out twice"
    assert all(cost(g) <= LIMIT for g in genomes)
    stats = population.generation_stats
    assert [row["generation"] for row in stats] == [0, 1, 2, 3]
    assert [row["trials"] for row in stats] == [sum(1 for *_, gen in asked if gen == g) for g in range(4)]
    # generation 0 holds population-size genomes: uniform ones thinned to 20 %, then random ones
    assert len(least_pruned_uniforms(SPACE, cost, LIMIT)) > 8 and [row["trials"] for row in stats] == [8, 8, 8, 8]
    assert all(row["failed"] == 0 and row["feasible_fraction"] == 1.0 for row in stats)
    hypervolumes = [row["hypervolume"] for row in stats]
    assert hypervolumes == sorted(hypervolumes) and hypervolumes[0] > 0
    best = [row["best_feasible_accuracy"] for row in stats]
    assert best == sorted(best)
    assert len(population.history) == len(asked) == 8 + 24
    assert set(population.history[0]) == {"genome", "accuracy", "cost", "violation", "generation", "failed",
                                           "from_cache", "rung"}
    assert len(population.parents) == 8


def test_front_is_the_feasible_non_dominated_set_of_everything_evaluated():
    population = make()
    drive(population, [], [])
    front = population.front()
    rows = [(r["genome"], r["accuracy"], r["cost"], r["violation"]) for r in population.history]
    assert front and [(r["genome"], r["accuracy"], r["cost"]) for r in front] == [
        (g, a, c) for g, a, c, _ in sorted(pareto_front(rows), key=lambda row: (row[2], -row[1]))]
    assert all(r["violation"] == 0.0 and not r["failed"] for r in front)
    fitness = [ConstrainedFitness((r["accuracy"], r["cost"]), r["violation"]) for r in front]
    assert not any(a.dominates(b) for a in fitness for b in fitness)
    assert population.generation_stats[-1]["front_size"] == len(front)
    assert population.generation_stats[-1]["best_feasible_accuracy"] == max(r["accuracy"] for r in front)


def test_generation_zero_mixes_thinned_uniforms_guided_and_random_policies_over_the_cost_axis():
    fitting = least_pruned_uniforms(SPACE, cost, LIMIT)
    by_cost = sorted(fitting, key=cost)
    guided = [(7, 2, 3) * 5, (7, 1, 1) * 5]  # within the limit, not uniform-least-pruned
    assert all(cost(g) <= LIMIT and g not in fitting for g in guided)
    population = make(population_size=10, generations=1, guided=guided)
    first = [population.ask() for _ in range(10)]
    assert population.ask() is None
    genomes = [c.genome for c in first]
    # 2 uniform policies (20 % of 10) of the 36 that fit: the cheapest and the dearest
    assert len(fitting) == 36 and genomes[:2] == [g for g in fitting if g in (by_cost[0], by_cost[-1])]
    assert genomes[2:4] == guided and not any(c.repaired for c in first[:4])
    # random ones repaired to fractions spread over 0.1-1.0 of the budget: cheap and dear ones
    randoms = [cost(g) / LIMIT for g in genomes[4:]]
    assert all(g not in SPACE.uniform_genomes() for g in genomes[4:]) and all(r <= 1 for r in randoms)
    assert min(randoms) <= 0.45 and max(randoms) > 0.6, randoms
    assert len(set(genomes)) == 10


def test_generation_zero_takes_the_first_guided_policies_up_to_their_share():
    # eight distinct guided genomes within the limit, none a least-pruned uniform one: 60 % of 10
    # (GUIDED_SHARE) are taken, the first six in the order given, and random ones fill the rest
    fitting = least_pruned_uniforms(SPACE, cost, LIMIT)
    guided = [(7, 2, 3) * 5, (7, 1, 1) * 5, (7, 0, 0) * 5, (7, 1, 0) * 5, (7, 0, 1) * 5, (6, 0, 0) * 5,
              (6, 1, 0) * 5, (6, 0, 1) * 5]
    assert all(cost(g) <= LIMIT and g not in fitting for g in guided) and len(set(guided)) == 8
    population = make(population_size=10, generations=1, guided=guided)
    genomes = [population.ask().genome for _ in range(10)]
    assert genomes[2:8] == guided[:6]
    assert not set(guided[6:]) & set(genomes) and all(g not in SPACE.uniform_genomes() for g in genomes[8:])
    assert len(set(genomes)) == 10


def test_a_guided_genome_over_the_budget_is_refused():
    with pytest.raises(ValueError, match=r"guided genome .* over the limit"):
        make(guided=[(0, 5, 5) * 5])


def test_ask_waits_for_out_of_order_results_then_opens_the_next_generation():
    population = make(population_size=4, generations=2, limit=LIMIT // 32)  # one uniform fits
    generation0 = [population.ask() for _ in range(4)]
    assert all(isinstance(c, Candidate) and c.generation == 0 for c in generation0)
    assert population.ask() is None and population.pending == 4
    for candidate in reversed(generation0):
        assert population.generation_stats == []
        population.tell(candidate.ask_id, accuracy(candidate.genome), cost(candidate.genome))
    assert len(population.generation_stats) == 1 and population.pending == 0
    following = population.ask()
    assert following.generation == 1 and following.genome not in {c.genome for c in generation0}


def test_tell_rejects_unknown_and_repeated_ask_ids():
    population = make()
    candidate = population.ask()
    with pytest.raises(ValueError, match="ask_id=999 is not pending"):
        population.tell(999, 0.5, 1.0)
    population.tell(candidate.ask_id, 0.5, 1.0)
    with pytest.raises(ValueError, match=f"ask_id={candidate.ask_id} is not pending"):
        population.tell(candidate.ask_id, 0.5, 1.0)


def test_failed_and_nan_results_are_infeasible_and_counted():
    population = make(population_size=4, generations=1, limit=LIMIT // 32)  # one uniform fits
    candidates = [population.ask() for _ in range(4)]
    within = population.limit / 2
    population.tell(candidates[0].ask_id, math.nan, within)
    population.tell(candidates[1].ask_id, 0.9, within, failed=True)
    population.tell(candidates[2].ask_id, 0.7, population.limit * 1.5)  # the trial measured more than predicted
    population.tell(candidates[3].ask_id, 0.6, within)
    violations = [r["violation"] for r in population.history]
    assert violations == [math.inf, math.inf, pytest.approx(0.5), 0.0]
    assert [r["failed"] for r in population.history] == [True, True, False, False]
    row = population.generation_stats[0]
    assert (row["failed"], row["trials"], row["feasible_fraction"], row["front_size"]) == (2, 4, 0.25, 1)
    assert [r["genome"] for r in population.front()] == [candidates[3].genome]


def test_an_exhausted_space_is_answered_from_the_cache():
    tiny = SearchSpace(("only",), sparsity_choices=(0.0, 0.5), weight_bit_choices=(4, 8),
                       activation_bit_choices=(4, 8))
    population = Population(space=tiny, cost_fn=lambda g: cost(g, tiny, (1,)), limit=1000,
                            population_size=4, generations=5, seed=0)
    asked, told = [], []
    drive(population, asked, told)
    genomes = [g for _, g, _ in asked]
    assert len(genomes) == len(set(genomes)) == 8  # the whole space, each genome once
    assert len(population.generation_stats) == 5
    cached = [r for r in population.history if r["from_cache"]]
    assert cached and sum(row["cached"] for row in population.generation_stats) == len(cached)
    assert all(r["genome"] in genomes and r["generation"] >= 1 for r in cached)  # generation 0 is never cached
    assert population.generation_stats[-1]["trials"] == 0


def test_ask_only_pops_prepared_offspring():
    calls = []
    population = make(cost_fn=lambda g: calls.append(g) or cost(g), population_size=16)
    before = len(calls)
    for _ in range(16):
        assert population.ask() is not None
    assert len(calls) == before  # no cost evaluation, breeding or repair on ask()


def test_same_seed_same_run_other_seed_other_run():
    runs = []
    for seed in (5, 5, 6):
        asked = []
        drive(make(seed=seed), asked, [])
        runs.append(asked)
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize("rungs", [1, 3])
@pytest.mark.parametrize("stop_after", [2, 8, 13, 27])
def test_state_round_trip_continues_exactly(stop_after, rungs):
    uninterrupted, reference, told_reference = make(rungs=rungs), [], []
    drive(uninterrupted, reference, told_reference, with_failures=True)

    population, asked, told = make(rungs=rungs), [], []
    in_flight = drive(population, asked, told, stop_after=stop_after, with_failures=True)
    assert in_flight and population.pending == len(in_flight)  # snapshot with results outstanding
    state = json.loads(json.dumps(population.state(), allow_nan=False))  # strict JSON
    restored = Population.from_state(state, cost_fn=cost)
    assert restored.pending == 0 and len(restored.history) == len(population.history)

    resumed = []
    drive(restored, resumed, told, with_failures=True)
    reissued = resumed[:len(in_flight)]
    assert [(a, g) for a, g, _ in reissued] == [(c.ask_id, c.genome) for c in in_flight]
    assert not {a for a, _, _ in resumed} & set(told[:stop_after]), "a told genome was handed out again"
    assert asked + resumed[len(in_flight):] == reference
    assert told == told_reference
    finished = restored.state()
    for key in ("history", "generation_stats", "parents", "archive_front", "rng"):
        assert finished[key] == uninterrupted.state()[key]  # state() spells NaN as "nan": comparable
    assert any(r["failed"] for r in restored.history)
    assert {r["rung"] for r in restored.history} == set(range(rungs))


class Journal:
    """What evo.runs.recorder keeps for --resume: the state at start and at each generation close,
    and a log of the results told since (the population is driven through this wrapper)."""

    def __init__(self, population):
        self.population, self.cost_fn = population, population.cost_fn
        self.snapshot, self.log, self.genomes = population.state(), [], {}

    def ask(self):
        item = self.population.ask()
        if item is not None and item is not FINISHED:
            self.genomes[item.ask_id] = item.genome
        return item

    def tell(self, ask_id, accuracy, cost, failed=False):
        closed = len(self.population.generation_stats)
        self.population.tell(ask_id, accuracy, cost, failed=failed)
        self.log.append((self.genomes[ask_id], accuracy, cost, failed))
        if len(self.population.generation_stats) > closed:
            self.snapshot, self.log = json.loads(json.dumps(self.population.state())), []


@pytest.mark.parametrize("rungs", [1, 3])
@pytest.mark.parametrize("stop_after", [1, 5, 12, 13, 20, 27, 31])
def test_state_at_generation_close_plus_replayed_log_continues_exactly(stop_after, rungs):
    uninterrupted, reference, told_reference = make(rungs=rungs), [], []
    drive(uninterrupted, reference, told_reference, with_failures=True)

    journal, asked, told = Journal(make(rungs=rungs)), [], []
    in_flight = drive(journal, asked, told, stop_after=stop_after, with_failures=True)
    assert in_flight
    restored = Population.from_state(journal.snapshot, cost_fn=cost)
    restored.replay(journal.log)
    now, replayed = journal.population.state(), restored.state()
    for key in ("history", "generation_stats", "parents", "archive_front", "offspring", "rng", "generation",
                "rung", "rung_results"):
        assert replayed[key] == now[key]
    assert [g for g, _, _ in replayed["queue"]] == [g for g, _, _ in now["queue"]]  # in-flight ones first

    drive(restored, [], [], with_failures=True)
    for key in ("history", "generation_stats", "parents", "archive_front", "rng"):
        assert restored.state()[key] == uninterrupted.state()[key]


def test_replay_rejects_a_log_from_another_state():
    population = make()
    snapshot = population.state()
    candidate = population.ask()
    population.tell(candidate.ask_id, 0.5, cost(candidate.genome))
    stranger = tuple(1 for _ in candidate.genome)
    with pytest.raises(ValueError, match="not waiting in generation 0"):
        Population.from_state(snapshot, cost_fn=cost).replay([(stranger, 0.5, cost(stranger), False)])
    with pytest.raises(ValueError, match="repeats a genome"):
        Population.from_state(snapshot, cost_fn=cost).replay([(candidate.genome, 0.5, 1.0, False)] * 2)
    # a whole finished search's worth of results, then one more
    done = Journal(make())
    drive(done, [], [])
    with pytest.raises(ValueError, match="logged results left"):
        Population.from_state(make().state(), cost_fn=cost).replay(
            [entry for entry in _all_results(done.population)] + [(candidate.genome, 0.5, 1.0, False)])


def _all_results(population):
    return [(r["genome"], r["accuracy"], r["cost"], r["failed"]) for r in population.history if not r["from_cache"]]


def test_a_result_for_a_pending_genome_can_arrive_before_it_is_asked_again():
    population = make()
    first, second = population.ask(), population.ask()
    restored = Population.from_state(population.state(), cost_fn=cost)
    restored.tell(first.ask_id, accuracy(first.genome), cost(first.genome))
    again = restored.ask()
    assert (again.ask_id, again.genome) == (second.ask_id, second.genome)
    assert restored.ask().ask_id not in (first.ask_id, second.ask_id)


def test_from_state_rejects_other_data():
    with pytest.raises(ValueError, match="version"):
        Population.from_state({"version": 99}, cost_fn=cost)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"population_size": 3}, "population_size=3"),
        ({"generations": 0}, "generations=0"),
        ({"limit": 0}, "limit=0"),
        ({"limit": math.nan}, "limit=nan"),
        ({"crossover_prob": 1.5}, "crossover_prob=1.5"),
        ({"mutation_indpb": -0.1}, "mutation_indpb=-0.1"),
        ({"seed": "x"}, "seed='x'"),
        ({"space": "layer0"}, "SearchSpace"),
    ],
)
def test_bad_settings_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_unreachable_budget_names_the_cheapest_cost():
    with pytest.raises(ValueError, match=r"budget unreachable: limit=1 .*costs 3"):
        make(limit=1.0)  # cheapest: 15 * 0.05 * 2 * 2 = 3


def test_a_generation_closes_the_same_whatever_order_its_results_arrive_in():
    import random as random_module

    def run(shuffle_seed):
        population = make()
        order = random_module.Random(shuffle_seed)
        while (item := population.ask()) is not FINISHED:
            waiting = [item]
            while (more := population.ask()) not in (None, FINISHED):
                waiting.append(more)
            order.shuffle(waiting)  # results of one generation told in a random order
            for candidate in waiting:
                population.tell(candidate.ask_id, accuracy(candidate.genome), cost(candidate.genome))
        return [tuple(r["genome"]) for r in population.history], population.generation_stats

    first, second = run(1), run(2)
    assert sorted(first[0]) == sorted(second[0]) and first[1] == second[1]
