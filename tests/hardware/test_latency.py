"""Roofline latency for each target kind, compute-bound and memory-bound, computed by hand."""

import pytest

from hardware.cost import effective_layers, layer_costs, total_costs
from hardware.latency import PEAK_BY_KIND, layer_latency_s, peak_macs_per_s
from hardware.targets import TARGET_KINDS


def test_every_kind_has_a_peak_rule():
    assert set(PEAK_BY_KIND) == set(TARGET_KINDS)


@pytest.mark.parametrize(
    "kind, weight_bits, activation_bits, expected",
    [
        # bitserial: peak_macs_per_s is the 1x1 rate, 1.6e13 / (b_w * b_a)
        ("bitserial", 8, 8, 1.6e13 / 64),
        ("bitserial", 4, 4, 1e12),
        ("bitserial", 3, 5, 1.6e13 / 15),
        ("bitserial", 32, 8, 1e10),  # float operand: float peak
        # bricks: peak_macs_per_s is the 8x8 rate; operands round up to 2/4/8 bits
        ("bricks", 8, 8, 1.6e13),
        ("bricks", 4, 4, 4 * 1.6e13),
        ("bricks", 2, 2, 16 * 1.6e13),
        ("bricks", 3, 5, 2 * 1.6e13),  # 3 -> 4, 5 -> 8: (8/4)*(8/8)
        ("bricks", 7, 2, 4 * 1.6e13),  # 7 -> 8, 2 -> 2: (8/8)*(8/2)
        ("bricks", 8, 32, 1e10),
        # int8: everything up to 8 bits runs at the INT8 peak
        ("int8", 8, 8, 1.6e13),
        ("int8", 2, 4, 1.6e13),
        ("int8", 32, 32, 1e10),
    ],
)
def test_peak_by_bits(make_target, kind, weight_bits, activation_bits, expected):
    assert peak_macs_per_s(make_target(kind), weight_bits, activation_bits) == pytest.approx(expected)


# LeNet conv2 under the mixed policy: w4a4, 800,000 kept MACs of 1,600,000; traffic 99,320
# bits on zero-skipping hardware (kept weights + index), 124,320 on dense (see test_size).
CASES = [
    # bitserial at 1e12 MAC/s (w4a4), zero skipping: compute 800,000/1e12 = 8e-7 s,
    # memory 99,320/2e11 = 4.966e-7 s -> compute-bound
    ("bitserial", dict(peak_macs_per_s=1.6e13, bandwidth_bits_per_s=2e11), 8e-7),
    # same chip at 5e10 bits/s: memory 99,320/5e10 = 1.9864e-6 s -> memory-bound
    ("bitserial", dict(peak_macs_per_s=1.6e13, bandwidth_bits_per_s=5e10), 1.9864e-6),
    # bricks, 8x8 peak 2.5e11 -> 1e12 at 4x4; dense: 1,600,000/1e12 = 1.6e-6 s
    # (memory 124,320/2e11 = 6.216e-7 s) -> compute-bound
    ("bricks", dict(peak_macs_per_s=2.5e11, skips_zeros=False), 1.6e-6),
    # bricks at 1e10 bits/s: memory 124,320/1e10 = 1.2432e-5 s -> memory-bound
    ("bricks", dict(peak_macs_per_s=2.5e11, skips_zeros=False, bandwidth_bits_per_s=1e10), 1.2432e-5),
    # int8 NPU at 1e12: 4 bits run like 8, dense: 1,600,000/1e12 = 1.6e-6 s -> compute-bound
    ("int8", dict(peak_macs_per_s=1e12, skips_zeros=False), 1.6e-6),
    # int8 NPU at 2e12: compute 8e-7 s > memory 6.216e-7 s -> compute-bound
    ("int8", dict(peak_macs_per_s=2e12, skips_zeros=False), 8e-7),
    # int8 NPU at 8e12: compute 2e-7 s < memory 6.216e-7 s -> memory-bound
    ("int8", dict(peak_macs_per_s=8e12, skips_zeros=False), 6.216e-7),
]


@pytest.mark.parametrize("kind, overrides, expected", CASES)
def test_layer_latency_by_hand(lenet_specs, mixed_policy, make_target, kind, overrides, expected):
    conv2 = effective_layers(lenet_specs, mixed_policy)[1]
    assert layer_latency_s(conv2, make_target(kind, **overrides)) == pytest.approx(expected)


def test_model_latency_is_sum_of_layers(lenet_specs, mixed_policy):
    rows = layer_costs(lenet_specs, mixed_policy, "int8-npu")
    assert total_costs(lenet_specs, mixed_policy, "int8-npu")["latency_s"] == pytest.approx(
        sum(r["latency_s"] for r in rows)
    )


def test_int8_npu_gains_less_than_bops(lenet_specs, mixed_policy):
    # BOPs promise ~4.6x over w8a8; the INT8 NPU cannot run 2- or 4-bit operands faster,
    # so its latency gain comes only from the smaller memory traffic and stays far below.
    totals = total_costs(lenet_specs, mixed_policy, "int8-npu")
    assert totals["bops_vs_int8"] == pytest.approx(4.6137, rel=1e-4)
    assert 1.0 < totals["latency_vs_int8"] < totals["bops_vs_int8"]
