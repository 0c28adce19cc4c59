"""BOPs golden values for LeNet-5, computed by hand."""

import pytest

from hardware.bops import uniform_bops
from hardware.cost import total_costs
from hardware.policy import LayerPolicy, Policy


def test_fp32_dense_bops(lenet_specs):
    names = [s.name for s in lenet_specs]
    totals = total_costs(lenet_specs, Policy.float(names), "bitserial")
    # 2,293,000 MACs * 32 * 32 = 2,348,032,000
    assert totals["bops"] == totals["bops_dense"] == 2_348_032_000
    assert uniform_bops(lenet_specs, 32) == 2_348_032_000
    assert totals["bops_vs_fp32"] == 1.0
    assert totals["bops_vs_int8"] == pytest.approx(1 / 16)  # 8*8 / (32*32)


def test_mixed_policy_bops(lenet_specs, mixed_policy):
    totals = total_costs(lenet_specs, mixed_policy, "bitserial")
    # ideal (zero-skipping) BOPs = H*W*nnz * b_w * b_a:
    #   conv1 288,000 * 8*8 = 18,432,000
    #   conv2 64*12,500 = 800,000 * 4*4 = 12,800,000
    #   fc1   40,000 * 2*4 = 320,000
    #   fc2   4,000 * 8*8 = 256,000
    assert totals["bops"] == 18_432_000 + 12_800_000 + 320_000 + 256_000 == 31_808_000
    # dense hardware: conv1 18,432,000 + conv2 1,600,000*16 + fc1 400,000*8 + fc2 5,000*64
    assert totals["bops_dense"] == 18_432_000 + 25_600_000 + 3_200_000 + 320_000 == 47_552_000
    assert totals["bops_vs_fp32"] == pytest.approx(2_348_032_000 / 31_808_000)  # ~73.8x
    assert totals["bops_vs_int8"] == pytest.approx(146_752_000 / 31_808_000)  # ~4.6x


def test_channel_policy_bops(lenet_specs):
    ratios = {"conv1": 0.5, "conv2": 0.5, "fc1": 0.3, "fc2": 1.0}
    policy = Policy(
        tuple((n, LayerPolicy(keep_ratio=r, weight_bits=4, activation_bits=4)) for n, r in ratios.items()),
        structure="channel",
    )
    totals = total_costs(lenet_specs, policy, "bitserial")
    # MACs: conv1 576*10*1*25 = 144,000; conv2 64*25*10*25 = 400,000; fc1 150*400 = 60,000;
    # fc2 10*150 = 1,500 -> 605,500 MACs * 4*4 = 9,688,000 BOPs, dense hardware the same
    assert totals["bops"] == totals["bops_dense"] == 9_688_000


def test_uniform_bops_int8(lenet_specs):
    assert uniform_bops(lenet_specs, 8) == 2_293_000 * 64 == 146_752_000
