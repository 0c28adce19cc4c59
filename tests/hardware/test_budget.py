"""Budget texts, their absolute limits on LeNet-5 and the violation of a cost."""

import pytest

from hardware.budget import Budget, budget_limit, budget_violation, parse_budget, violation
from hardware.cost import reference_costs, total_costs


@pytest.mark.parametrize(
    "text, metric, value, relative, reference",
    [
        ("bops=1/512", "bops", 1 / 512, True, "fp32"),
        ("bops=0.02xfp32", "bops", 0.02, True, "fp32"),
        ("bops=1/128xint8", "bops", 1 / 128, True, "int8"),
        ("bops=0.5xint8", "bops", 0.5, True, "int8"),
        ("bops=4.5e6", "bops", 4.5e6, False, "fp32"),
        ("size=1/100", "size_bits", 0.01, True, "fp32"),
        ("size_bits=1/50", "size_bits", 0.02, True, "fp32"),
        ("size_honest=1/20", "size_bits_honest", 0.05, True, "fp32"),
        ("energy=1/20", "energy_pj", 0.05, True, "fp32"),
        ("energy_pj=3e6", "energy_pj", 3e6, False, "fp32"),
        ("latency=0.5xfp32", "latency_s", 0.5, True, "fp32"),
        ("latency_s=2e-6", "latency_s", 2e-6, False, "fp32"),
        (" BOPS = 1/512 ", "bops", 1 / 512, True, "fp32"),  # spaces and case are forgiven
    ],
)
def test_parse_forms(text, metric, value, relative, reference):
    budget = parse_budget(text)
    assert (budget.metric, budget.relative, budget.reference) == (metric, relative, reference)
    assert budget.value == pytest.approx(value)
    assert budget.text == text.strip()


@pytest.mark.parametrize(
    "text, named",
    [
        ("bops", "metric=value"),
        ("bops=1=2", "metric=value"),
        ("flops=1/2", "valid metrics"),
        ("bops=abc", "valid forms"),
        ("bops=", "valid forms"),
        ("bops=0", "positive"),
        ("bops=-1", "positive"),
        ("bops=1/0", "positive"),
        ("bops=nan", "positive"),
        ("bops=inf", "positive"),
        ("bops=0.02x", "valid forms"),
        ("bops=0.02xfp16", "fp16.*valid choices"),
    ],
)
def test_bad_budgets_name_the_valid_forms(text, named):
    with pytest.raises(ValueError, match=named):
        parse_budget(text)


def test_budget_validates_at_construction():
    with pytest.raises(ValueError, match="flops.*valid choices"):
        Budget(metric="flops", value=0.1, relative=True)
    with pytest.raises(ValueError, match="positive"):
        Budget(metric="bops", value=0.0, relative=True)


def test_budget_limits_on_lenet(lenet_specs):
    # fp32 reference 2,348,032,000 BOPs / 512 = 4,586,000
    assert budget_limit(parse_budget("bops=1/512"), lenet_specs, "bitserial") == pytest.approx(4_586_000)
    # int8 reference 146,752,000 BOPs / 128 = 1,146,500
    assert budget_limit(parse_budget("bops=1/128xint8"), lenet_specs, "bitserial") == pytest.approx(1_146_500)
    # 430,500 weights * 32 bits / 100 = 137,760 bits
    assert budget_limit(parse_budget("size=1/100"), lenet_specs, "bitserial") == pytest.approx(137_760)
    assert budget_limit(parse_budget("bops=4.5e6"), lenet_specs, "bitserial") == 4.5e6
    # energy depends on the target: a fraction of that target's fp32 energy
    fp32_energy = reference_costs(lenet_specs, "int8-npu")["energy_pj"]
    assert budget_limit(parse_budget("energy=1/20"), lenet_specs, "int8-npu") == pytest.approx(fp32_energy / 20)


def test_violation(lenet_specs, mixed_policy):
    costs = total_costs(lenet_specs, mixed_policy, "bitserial")  # 31,808,000 BOPs
    loose, tight = parse_budget("bops=1/64"), parse_budget("bops=1/128")
    # 2,348,032,000 / 64 = 36,688,000 >= 31,808,000: feasible
    assert budget_violation(costs, loose, budget_limit(loose, lenet_specs, "bitserial")) == 0.0
    # 2,348,032,000 / 128 = 18,344,000: 31,808,000 / 18,344,000 - 1 = 0.73397...
    assert budget_violation(costs, tight, budget_limit(tight, lenet_specs, "bitserial")) == pytest.approx(
        31_808_000 / 18_344_000 - 1
    )
    assert budget_violation({"bops": 100}, loose, 100) == 0.0  # exactly at the limit is feasible


def test_violation_rejects_bad_limit_and_missing_metric():
    budget = parse_budget("size=1/100")
    with pytest.raises(ValueError, match="limit"):
        budget_violation({"size_bits": 5}, budget, 0)
    with pytest.raises(ValueError, match="size_bits"):
        budget_violation({"bops": 5}, budget, 10)


@pytest.mark.parametrize("cost, limit, expected", [(50.0, 100.0, 0.0), (100.0, 100.0, 0.0), (150.0, 100.0, 0.5),
                                                    (float("nan"), 100.0, float("inf")),
                                                    (float("inf"), 100.0, float("inf")), (None, 100.0, float("inf"))])
def test_violation_of_a_cost(cost, limit, expected):
    assert violation(cost, limit) == expected


@pytest.mark.parametrize("limit", [0, -1.0, float("nan"), float("inf"), True])
def test_violation_rejects_a_bad_limit(limit):
    with pytest.raises(ValueError, match="limit"):
        violation(1.0, limit)
