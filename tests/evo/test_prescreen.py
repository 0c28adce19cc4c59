"""The offspring pre-screen (evo.core.prescreen): the surrogate's fit, its choice, and the search it steers."""

import json
import random

import pytest

from evo.core import prescreen
from evo.core.population import Population
from evo.core.selection import pareto_front
from evo.core.sensitivity import Sensitivity

from test_population import LIMIT, SPACE, cost, make


def tables(seed, activation_scale=4.0):
    """Per-layer distortion tables for SPACE: pruning and fewer weight bits hurt, each layer by its
    own random factor; activation entries scaled by ``activation_scale``."""
    rng = random.Random(seed)
    weight, activation = [], []
    for i in range(len(SPACE.layer_names)):
        prune, wbits, abits = SPACE.layer_tables(i)
        s, t = rng.uniform(0.2, 3.0), rng.uniform(0.2, 3.0)
        weight.append(tuple(tuple(s * (p ** 2 + 2.0 ** -b) for b in wbits) for p in prune))
        activation.append(tuple(activation_scale * t * 2.0 ** -b for b in abits))
    return Sensitivity(tuple(weight), tuple(activation))


def true_accuracy(sensitivity, activation_weight):
    """A fake evaluator that the sensitivity predicts exactly once activations weigh ``activation_weight``."""
    def evaluate(genome):
        weight, activation = sensitivity.parts(genome)
        return 0.9 - 0.05 * (weight + activation_weight * activation)
    return evaluate


def random_genomes(count, seed):
    rng = random.Random(seed)
    bounds = SPACE.gene_bounds()
    return [tuple(rng.randint(low, high) for low, high in bounds) for _ in range(count)]


def test_spearman_is_the_rank_correlation_with_ties_at_their_mean_rank():
    assert prescreen.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    # ranks (0, 1.5, 1.5, 3) and (3, 1.5, 1.5, 0): perfectly reversed
    assert prescreen.spearman([1, 2, 2, 3], [4, 3, 3, 1]) == pytest.approx(-1.0)
    assert prescreen.spearman([1, 1, 1], [1, 2, 3]) != prescreen.spearman([1, 1, 1], [1, 2, 3])  # NaN


@pytest.mark.parametrize("activation_weight", [0.0, 2.0, 16.0])
def test_fit_finds_the_activation_weight_that_ranks_the_results(activation_weight):
    sensitivity = tables(0, activation_scale=1.0)
    evaluate = true_accuracy(sensitivity, activation_weight)
    results = [(g, evaluate(g)) for g in random_genomes(40, 1)]
    fitted = prescreen.fit(sensitivity, results)
    assert fitted.alpha == activation_weight and fitted.spearman == pytest.approx(1.0) and fitted.trusted
    assert fitted.results == 40


def test_fit_needs_enough_finite_results():
    sensitivity = tables(0)
    genomes = random_genomes(prescreen.MIN_RESULTS, 2)
    assert prescreen.fit(sensitivity, [(g, 0.5) for g in genomes[:-1]]) is None
    assert prescreen.fit(sensitivity, [(g, float("nan")) for g in genomes]) is None


def test_choose_keeps_the_predicted_front_over_cost_and_falls_back_to_bred_order():
    sensitivity = tables(3, activation_scale=1.0)
    evaluate = true_accuracy(sensitivity, 1.0)
    children = random_genomes(30, 4)
    fitted = prescreen.fit(sensitivity, [(g, evaluate(g)) for g in random_genomes(20, 5)])
    # the predicted front: least distortion at its cost (the fit's weight is the evaluator's)
    front = {e[0] for e in pareto_front([(c, evaluate(c), cost(c), 0.0) for c in children])}
    assert fitted.alpha == 1.0 and 3 <= len(front) < 20
    kept = prescreen.choose(children, len(front) + 2, sensitivity, fitted, cost)
    assert len(kept) == len(front) + 2 and kept == [c for c in children if c in kept]  # bred order kept
    assert front <= set(kept)
    # every child left out is dominated in (predicted accuracy, cost) by one kept
    for child in set(children) - set(kept):
        assert any(evaluate(k) >= evaluate(child) and cost(k) <= cost(child) for k in kept)
    # a fit below MIN_SPEARMAN is not trusted: the first k as bred
    untrusted = prescreen.Fit(alpha=1.0, spearman=prescreen.MIN_SPEARMAN - 0.01, results=20)
    assert prescreen.choose(children, 6, sensitivity, untrusted, cost) == children[:6]
    assert prescreen.choose(children, 6, sensitivity, None, cost) == children[:6]
    assert prescreen.choose(children[:4], 6, sensitivity, fitted, cost) == children[:4]


def run(population, evaluate):
    while True:
        candidate = population.ask()
        if candidate is None or isinstance(candidate, str):
            return population
        population.tell(candidate.ask_id, evaluate(candidate.genome), cost(candidate.genome))


def test_a_search_with_a_faithful_surrogate_reaches_a_better_front():
    # when the sensitivity predicts the evaluator (up to the activation weight, which the fit must
    # find: 4, not the tables' 1), pre-screening breeds a better front with the same trials
    for seed in range(4):
        sensitivity = tables(seed, activation_scale=1.0)
        evaluate = true_accuracy(sensitivity, 4.0)
        plain = run(make(seed=seed, population_size=10), evaluate)
        screened = run(make(seed=seed, population_size=10, surrogate=sensitivity), evaluate)
        assert len(screened.history) == len(plain.history)
        assert screened.generation_stats[-1]["hypervolume"] > plain.generation_stats[-1]["hypervolume"]
        for row in screened.generation_stats[:-1]:  # the last generation breeds nothing
            assert row["surrogate_alpha"] == 4.0 and row["surrogate_spearman"] == pytest.approx(1.0)
            assert row["surrogate_used"] is True
        assert all("surrogate_used" not in row for row in plain.generation_stats)


def test_a_search_with_a_surrogate_resumes_exactly():
    sensitivity = tables(7)
    evaluate = true_accuracy(sensitivity, 2.0)
    whole = run(make(seed=3, surrogate=sensitivity), evaluate)
    part = make(seed=3, surrogate=sensitivity)
    for _ in range(20):  # into generation 2, every result told
        candidate = part.ask()
        part.tell(candidate.ask_id, evaluate(candidate.genome), cost(candidate.genome))
    state = json.loads(json.dumps(part.state()))
    resumed = run(Population.from_state(state, cost_fn=cost), evaluate)
    assert resumed.surrogate == sensitivity
    assert resumed.history == whole.history and resumed.generation_stats == whole.generation_stats


def test_a_surrogate_that_does_not_fit_the_space_is_refused():
    with pytest.raises(ValueError, match="sensitivity tables cover"):
        make(surrogate=Sensitivity(tables(0).weight[:2], tables(0).activation[:2]))
    with pytest.raises(ValueError, match="must be an evo.core.sensitivity.Sensitivity"):
        make(surrogate={"weight": []})
