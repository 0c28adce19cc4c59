"""The baseline's two knapsack projections against brute force and hand-worked cases."""

import itertools

import numpy as np
import pytest

from hardware.cost import total_costs
from hardware.specs import LayerSpec
from trainables.knapsack import BIT_CHOICES, BudgetConstraint, bits_knapsack, policy_from, sparse_knapsack


# -- SparseProj: 0-1 knapsack -----------------------------------------------------------------
def test_sparse_knapsack_hand_example_keeps_the_best_ratio_prefix():
    # ratios w^2 / cost: 9/1, 1/1 (layer a), 16/4 = 4 (layer b) -> order 9, 16, 1; costs 1, 4, 1.
    # Budget 5 holds the first two (cumulative cost 5); the third would make 6.
    keep = sparse_knapsack([np.array([9.0, 1.0]), np.array([16.0])], [1, 4], 5, min_per_layer=0)
    assert keep[0].tolist() == [True, False] and keep[1].tolist() == [True]
    # Budget 4: 9 fits (cost 1), 16 does not (cost 5 > 4), and the prefix stops there even though
    # the 1 would still fit: the greedy keeps a prefix, it does not skip.
    keep = sparse_knapsack([np.array([9.0, 1.0]), np.array([16.0])], [1, 4], 4, min_per_layer=0)
    assert keep[0].tolist() == [True, False] and keep[1].tolist() == [False]


def test_sparse_knapsack_reserves_one_weight_per_layer():
    # Without the reservation layer b (ratio 0.25) would lose everything to layer a.
    keep = sparse_knapsack([np.array([9.0, 8.0, 7.0]), np.array([1.0, 0.5])], [1, 4], 6)
    assert keep[1].tolist() == [True, False]  # its largest weight, cost 4
    assert keep[0].tolist() == [True, True, False]  # the remaining budget 2 takes the two best


def _brute_force_01(values, costs, budget, min_per_layer):
    items = [(layer, i) for layer, v in enumerate(values) for i in range(len(v))]
    best = -1.0
    for mask in itertools.product([False, True], repeat=len(items)):
        chosen = [item for item, keep in zip(items, mask) if keep]
        counts = [sum(1 for layer, _ in chosen if layer == l) for l in range(len(values))]
        if any(c < min(min_per_layer, len(v)) for c, v in zip(counts, values)):
            continue
        if sum(costs[layer] for layer, _ in chosen) <= budget:
            best = max(best, sum(values[layer][i] for layer, i in chosen))
    return best


@pytest.mark.parametrize("min_per_layer", [0, 1])
@pytest.mark.parametrize("seed", range(12))
def test_sparse_knapsack_near_brute_force_optimum(seed, min_per_layer):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=3)
    values = [rng.random(n) ** 2 for n in sizes]
    costs = [int(c) for c in rng.integers(1, 9, size=3)]
    total = sum(c * n for c, n in zip(costs, sizes))
    budget = float(rng.uniform(sum(costs), total)) if min_per_layer else float(rng.uniform(0, total))
    keep = sparse_knapsack(values, costs, budget, min_per_layer=min_per_layer)
    spent = sum(c * k.sum() for c, k in zip(costs, keep))
    value = sum(v[k].sum() for v, k in zip(values, keep))
    assert spent <= budget
    assert all(k.sum() >= min_per_layer for k in keep)
    optimum = _brute_force_01(values, costs, budget, min_per_layer)
    assert value <= optimum + 1e-12
    assert value >= optimum - max(v.max() for v in values) - 1e-12  # the greedy's guarantee


def test_sparse_knapsack_rejects_a_budget_below_the_reservation():
    with pytest.raises(ValueError, match="cannot keep 1 weight"):
        sparse_knapsack([np.ones(3), np.ones(3)], [2, 2], 3)
    with pytest.raises(ValueError, match="budget"):
        sparse_knapsack([np.ones(3)], [2], -1)
    with pytest.raises(ValueError, match="one cost per layer"):
        sparse_knapsack([np.ones(3)], [2, 2], 10)


# -- QuantProj: multiple-choice knapsack ----------------------------------------------------------
def test_bits_knapsack_hand_example():
    # Layer a saves 6 then 1 per unit of cost, layer b 1 then 0.5. From (2, 2) bits at cost 4 the
    # greedy takes a 2->3 (cost 5), a 3->4 (6), b 2->3 (7): distortion 3 + 9 = 12, the optimum
    # (a4 b4 costs 8; a3 b4 = 4 + 8.5 = 12.5).
    distortions = np.array([[10.0, 4.0, 3.0], [10.0, 9.0, 8.5]])
    costs = np.array([[2.0, 3.0, 4.0], [2.0, 3.0, 4.0]])
    assert bits_knapsack(distortions, costs, 7).tolist() == [2, 1]


def test_bits_knapsack_jumps_over_a_choice_off_the_convex_hull():
    # 3 bits saves almost nothing over 2, 4 bits saves a lot: the hull goes straight 2 -> 4.
    distortions = np.array([[10.0, 9.9, 2.0], [5.0, 4.0, 3.0]])
    costs = np.array([[2.0, 3.0, 4.0], [2.0, 3.0, 4.0]])
    assert bits_knapsack(distortions, costs, 6).tolist() == [2, 0]


@pytest.mark.parametrize("seed", range(15))
def test_bits_knapsack_near_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(2, 5))
    counts = rng.integers(1, 50, size=layers)
    bits = np.array(BIT_CHOICES, dtype=float)
    costs = counts[:, None] * bits[None, :]
    # Distortion roughly halves per bit, with noise that can break monotonicity and convexity.
    distortions = rng.uniform(1, 100, size=(layers, 1)) * 2.0 ** -bits[None, :] * rng.uniform(0.7, 1.3, costs.shape)
    budget = float(rng.uniform(costs[:, 0].sum(), costs[:, -1].sum()))
    choice = bits_knapsack(distortions, costs, budget)
    rows = np.arange(layers)
    assert costs[rows, choice].sum() <= budget
    optimum = min(distortions[rows, combo].sum() for combo in itertools.product(range(len(bits)), repeat=layers)
                  if costs[rows, combo].sum() <= budget)
    got = distortions[rows, choice].sum()
    assert got >= optimum - 1e-12
    largest_saving = max(distortions[l, 0] - distortions[l].min() for l in range(layers))
    assert got <= optimum + largest_saving + 1e-12  # at most one hull step short of the LP bound


def test_bits_knapsack_takes_the_best_choices_when_everything_fits():
    distortions = np.array([[4.0, 2.0, 1.0], [3.0, 3.5, 0.5]])
    costs = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    assert bits_knapsack(distortions, costs, 100).tolist() == [2, 2]


def test_bits_knapsack_rejects_an_infeasible_budget_and_bad_shapes():
    with pytest.raises(ValueError, match="cheapest choice"):
        bits_knapsack(np.ones((2, 3)), np.ones((2, 3)), 1.5)
    with pytest.raises(ValueError, match="must be equal"):
        bits_knapsack(np.ones((2, 3)), np.ones((2, 2)), 10)


# -- the budget as a knapsack constraint ------------------------------------------------------------
@pytest.fixture
def small_specs():
    return [
        LayerSpec("conv", "conv", 1, 4, kernel=(3, 3), input_hw=(6, 6), output_hw=(4, 4)),  # N 36, HW 16
        LayerSpec("fc", "linear", 64, 10, producer="conv", input_channel_multiplier=16, prunable_outputs=False),
    ]


def test_constraint_prices_like_hardware_cost(small_specs):
    nnz, bits = [7, 100], [3, 5]
    size = BudgetConstraint.from_specs(small_specs, "size_bits", 1e9)
    bops = BudgetConstraint.from_specs(small_specs, "bops", 1e9, activation_bits=4)
    assert size.unit_costs == (1, 1) and size.activation_bits == 32
    assert bops.unit_costs == (4 * 16, 4 * 1)
    assert size.cost(nnz, bits) == 7 * 3 + 100 * 5 == 521
    assert bops.cost(nnz, bits) == 7 * 3 * 4 * 16 + 100 * 5 * 4 == 3344
    for constraint in (size, bops):
        policy = policy_from(small_specs, nnz, bits, constraint.activation_bits)
        assert total_costs(small_specs, policy, "bitserial")[constraint.metric] == constraint.cost(nnz, bits)


def test_constraint_minimum_and_errors(small_specs):
    bops = BudgetConstraint.from_specs(small_specs, "bops", 100, activation_bits=8)
    assert bops.minimum == 2 * (8 * 16 + 8 * 1) == 272
    with pytest.raises(ValueError, match=r"below what the ADMM baseline can reach.*272"):
        bops.check_reachable("bops=100")
    with pytest.raises(ValueError, match=r"size_bits.*bops"):
        BudgetConstraint.from_specs(small_specs, "energy_pj", 100)
    size = BudgetConstraint.from_specs(small_specs, "size_bits", 7)  # 3 bits x 2 layers fit, 4 do not
    assert size.initial_bits(4) == 3 and size.initial_bits(2) == 2
