"""The ADMM baseline on real data (digits + MLP): the budget holds exactly on the final weights."""

import json

import numpy as np
import pytest
import torch

from hardware.budget import budget_limit, parse_budget
from hardware.cost import kept_weights, total_costs
from hardware.profiler import profile_model
from hardware.specs import LayerSpec
from trainables.admm import ADMMSettings, quant_project, run_admm, sparse_project
from trainables.admm_trial import ADMMTrialSettings, run_admm_trial
from trainables.data import load_dataset, to_tensors
from trainables.kmeans import nonzero_counts
from trainables.knapsack import BudgetConstraint, policy_from
from trainables.models import create_model
from trainables.pretrain import pretrain

QUICK = dict(epochs=2, fine_tune_epochs=1, batch_size=64, lr=0.02)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine more threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return to_tensors(load_dataset("digits", seed=0), "cpu")


@pytest.fixture(scope="module")
def base_state(tmp_path_factory):
    result = pretrain("mlp", "digits", epochs=8, seed=0, cache_dir=tmp_path_factory.mktemp("cache"), log=lambda _: None)
    assert result.val_accuracy > 0.9
    return result.state_dict


def fresh_model(digits, base_state):
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    model.load_state_dict(base_state)
    return model


def linear_spec(name, n_in, n_out):
    return LayerSpec(name, "linear", n_in, n_out)


@pytest.mark.parametrize("total", [1, 2, 3, 7, 10, 97, 500, 4096, 25_000, 400_000, 430_500])
def test_policy_from_reproduces_every_count_exactly(total):
    spec = linear_spec("fc", total, 1)
    counts = range(1, total + 1) if total <= 4096 else np.random.default_rng(total).integers(1, total + 1, 3000)
    for count in counts:
        sparsity = policy_from([spec], [int(count)], [3], 32)["fc"].sparsity
        assert kept_weights(total, sparsity) == count and 0 <= sparsity < 1


def test_policy_from_rejects_empty_layers():
    with pytest.raises(ValueError, match=r"nnz=0 must be in \[1, 6\]"):
        policy_from([linear_spec("fc", 3, 2)], [0], [3], 32)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="rho=0"):
        ADMMSettings(rho=0)
    with pytest.raises(ValueError, match="rho=-0.1"):
        ADMMSettings(rho=-0.1)
    with pytest.raises(ValueError, match=r"quantizer='ternary'.*kmeans"):
        ADMMSettings(quantizer="ternary")
    with pytest.raises(ValueError, match=r"initial_bits=1.*\[2, 3"):
        ADMMSettings(initial_bits=1)


def test_projections_meet_the_budget_and_prune_in_place():
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(30, 40, generator=generator), torch.randn(10, 30, generator=generator)]
    specs = [linear_spec("a", 40, 30), linear_spec("b", 30, 10)]
    constraint = BudgetConstraint.from_specs(specs, "size_bits", 1500)
    nnz = sparse_project(weights, [4, 4], constraint)
    assert [int(torch.count_nonzero(w)) for w in weights] == nnz
    assert 4 * sum(nnz) <= 1500 < 4 * (sum(nnz) + 1)  # the greedy fills the budget up to one weight
    quantized, bits = quant_project(weights, nnz, constraint, "kmeans")
    assert constraint.cost(nnz, bits) <= 1500
    assert all(len(q.unique()) <= 2**b + 1 for q, b in zip(quantized, bits))


@pytest.mark.parametrize("quantizer,budget", [("kmeans", "size=1/50"), ("uniform", "size=1/50"),
                                              ("kmeans", "bops=1/400")])
def test_short_admm_run_meets_its_budget_exactly(digits, base_state, quantizer, budget):
    model = fresh_model(digits, base_state)
    specs = profile_model(model, digits.image_shape)
    parsed = parse_budget(budget)
    limit = budget_limit(parsed, specs, "bitserial")
    constraint = BudgetConstraint.from_specs(specs, parsed.metric, limit, activation_bits=8)
    epochs = []
    result = run_admm(model, digits, specs, constraint, ADMMSettings(quantizer=quantizer, **QUICK),
                      on_epoch=epochs.append)
    # The budget, on the real weights after the final fine-tune: sum b * u * (non-zeros) <= S.
    nonzero = nonzero_counts([model.get_submodule(s.name) for s in specs])
    assert nonzero == result.nonzero and all(n <= k for n, k in zip(nonzero, result.nnz))
    assert constraint.cost(nonzero, result.bits) <= limit
    # ... and as hardware prices the reported policy, the same way it prices evolved policies.
    costs = total_costs(specs, result.policy, "bitserial")
    assert costs[parsed.metric] == constraint.cost(result.nnz, result.bits) <= limit
    assert costs["nnz"] == sum(result.nnz)
    assert [result.policy[s.name].weight_bits for s in specs] == result.bits
    assert {result.policy[s.name].activation_bits for s in specs} == {32 if parsed.metric == "size_bits" else 8}
    if quantizer == "kmeans":
        for spec, bits in zip(specs, result.bits):
            assert len(model.get_submodule(spec.name).weight.detach().unique()) <= 2**bits + 1
    assert [e["stage"] for e in epochs] == ["admm", "admm", "fine_tune"] and epochs == result.history
    assert all(e["cost"] <= limit for e in epochs)
    from trainables.train import evaluate

    assert evaluate(model, digits.val_x, digits.val_y)["accuracy"] > 0.8


def test_budget_below_the_minimum_is_refused(digits, base_state):
    model = fresh_model(digits, base_state)
    specs = profile_model(model, digits.image_shape)
    constraint = BudgetConstraint.from_specs(specs, "size_bits", 5)  # 3 layers x 2 bits = 6
    with pytest.raises(ValueError, match=r"below what the ADMM baseline can reach.*6"):
        run_admm(model, digits, specs, constraint, ADMMSettings(**QUICK))


def test_trial_reports_the_policy_trial_keys(digits, base_state):
    model = fresh_model(digits, base_state)
    specs = profile_model(model, digits.image_shape)
    limit = budget_limit(parse_budget("size=1/40"), specs, "bitserial")
    settings = ADMMTrialSettings(model_ref={"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 10, "image_shape": [1, 8, 8]}, target="bitserial",
                                 admm=ADMMSettings(**QUICK))
    reports = []
    final = run_admm_trial({"budget": "size=1/40", "metric": "size_bits", "limit": limit, "seed": 1},
                           splits=digits, base_state=base_state, specs=specs, settings=settings,
                           report=reports.append)
    for key in ("accuracy", "loss", "test_accuracy", "bops", "bops_vs_fp32", "bops_vs_int8", "size_bits",
                "size_bits_honest", "energy_pj", "latency_s", "cost", "limit", "violation", "compute_seconds",
                "policy"):
        assert key in final, key
    assert final["violation"] == 0 and final["cost"] <= limit
    assert [r["phase"] for r in reports] == ["epoch"] * 3
    assert all(isinstance(r["w_minus_v"], float) for r in reports if r["stage"] == "admm")
    assert all(len(r["bits_per_layer"]) == len(r["nnz_per_layer"]) == 3 for r in reports)
    from hardware.policy import Policy

    policy = Policy.from_dict(json.loads(final["policy"]))
    assert total_costs(specs, policy, "bitserial")["size_bits"] == final["size_bits"] == final["cost"]
