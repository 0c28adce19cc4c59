"""Model size (comparable and honest) and memory traffic, computed by hand."""

from dataclasses import replace

import pytest

from hardware.cost import effective_layers, layer_costs, total_costs
from hardware.policy import Policy
from hardware.size import honest_size_bits, sparse_index_bits, traffic_bits


@pytest.mark.parametrize(
    "slots, nnz, expected",
    [
        (100, 100, 0),  # dense: no index
        (100, 0, 0),  # nothing kept: nothing to locate
        (25_000, 12_500, 25_000),  # gaps ceil(log2 2)+1 = 2 bits * 12,500 = 25,000 = bitmask
        # ceil(log2 10)+1 = 5 bits; q = 0.9^31 = 0.03815, fillers 40,000 q/(1-q) = 1,586.7:
        # ceil(5 * 41,586.7) = 207,934 < 400,000 bitmask
        (400_000, 40_000, 207_934),
        (5_000, 4_000, 5_000),  # ceil(log2 1.25)+1 = 2 bits * 4,000 = 8,000 > 5,000 bitmask
        (1_000, 10, 87),  # ceil(log2 100)+1 = 8 bits; q = 0.99^255 = 0.0771, 0.835 fillers: ceil(8 * 10.835)
    ],
)
def test_sparse_index_bits(slots, nnz, expected):
    assert sparse_index_bits(slots, nnz) == expected


def test_lenet_mixed_sizes(lenet_specs, mixed_policy):
    rows = {r["name"]: r for r in layer_costs(lenet_specs, mixed_policy, "bitserial")}
    # comparable = nnz * b_w: 500*8, 12,500*4, 40,000*2, 4,000*8
    assert [rows[n]["size_bits"] for n in ("conv1", "conv2", "fc1", "fc2")] == [4_000, 50_000, 80_000, 32_000]
    # honest = comparable + index + 32-bit scale and 32-bit bias per output channel:
    #   conv1 4,000 + 0 + 32*20 + 32*20          = 5,280
    #   conv2 50,000 + 25,000 + 32*50 + 32*50    = 78,200
    #   fc1   80,000 + 207,934 + 32*500 + 32*500 = 319,934
    #   fc2   32,000 + 5,000 + 32*10 + 32*10     = 37,640
    assert [rows[n]["size_bits_honest"] for n in ("conv1", "conv2", "fc1", "fc2")] == [5_280, 78_200, 319_934, 37_640]
    totals = total_costs(lenet_specs, mixed_policy, "bitserial")
    assert totals["size_bits"] == 166_000
    assert totals["size_bits_honest"] == 441_054
    assert totals["size_vs_fp32"] == pytest.approx(430_500 * 32 / 166_000)  # ~83x


def test_float_weights_need_no_scales(lenet_specs):
    names = [s.name for s in lenet_specs]
    totals = total_costs(lenet_specs, Policy.float(names), "bitserial")
    # fp32: 430,500*32 weights + 32-bit biases for 20+50+500+10 = 580 outputs, no scales, no index
    assert totals["size_bits"] == 13_776_000
    assert totals["size_bits_honest"] == 13_776_000 + 32 * 580


def test_channel_size_counts_batchnorm(residual_specs):
    policy = Policy.uniform([s.name for s in residual_specs], keep_ratio=0.5, weight_bits=4, activation_bits=4,
                            structure="channel")
    stem = effective_layers(residual_specs, policy)[0]
    # stem keeps 8 of 16 outputs: nnz 8*3*9 = 216 -> 864 bits; no index (channels removed);
    # scales 32*8 = 256; no bias of its own: the folded BatchNorm's factor merges into the scales
    # and its shift becomes a bias, 32*8 = 256 -> 1,376
    assert honest_size_bits(stem) == 864 + 256 + 256 == 1_376
    with_bias = effective_layers([replace(residual_specs[0], has_bias=True)], Policy.uniform(
        [residual_specs[0].name], keep_ratio=0.5, weight_bits=4, activation_bits=4, structure="channel"))[0]
    assert honest_size_bits(with_bias) == 1_376  # the shift adds to the bias it already has: nothing more


def test_traffic_bits(lenet_specs, mixed_policy):
    conv2 = effective_layers(lenet_specs, mixed_policy)[1]
    activations = 20 * 12 * 12 * 4 + 50 * 8 * 8 * 4  # inputs 11,520 + outputs 12,800 at 4 bits
    # zero-skipping: kept weights 12,500*4 = 50,000 + their index 25,000
    assert traffic_bits(conv2, skips_zeros=True) == 75_000 + activations == 99_320
    # dense: all 25,000 slots * 4 bits, zeros included
    assert traffic_bits(conv2, skips_zeros=False) == 100_000 + activations == 124_320
