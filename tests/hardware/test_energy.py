"""Energy (Horowitz 45 nm constants) computed by hand for single MACs and single layers."""

import pytest

from hardware.cost import effective_layers
from hardware.energy import accumulator_bits, layer_energy_pj, mac_energy_pj
from hardware.policy import Policy


@pytest.mark.parametrize(
    "weight_bits, activation_bits, terms, expected_bits",
    [
        (8, 8, 1, 16),  # 8+8+0
        (4, 4, 500, 17),  # 4+4+ceil(log2 500) = 8+9
        (2, 2, 1, 8),  # 4 bits, clamped up to Horowitz's smallest adder
        (8, 8, 1_000_000, 32),  # 16+20 = 36, clamped to 32
    ],
)
def test_accumulator_bits(weight_bits, activation_bits, terms, expected_bits):
    assert accumulator_bits(weight_bits, activation_bits, terms) == expected_bits


def test_mac_energy():
    # 8x8: multiply 0.2 pJ; 16-bit add 0.03 + 0.07*(16-8)/24 = 0.053333 pJ
    assert mac_energy_pj(8, 8, 1) == pytest.approx(0.2 + 0.03 + 0.07 * 8 / 24)
    # 2x2 multiply 0.2*4/64 = 0.0125 pJ, 8-bit add 0.03 pJ
    assert mac_energy_pj(2, 2, 1) == pytest.approx(0.0425)
    # 32-bit accumulator: 0.1 pJ add
    assert mac_energy_pj(8, 8, 1_000_000) == pytest.approx(0.3)
    # either operand float: 3.7 pJ multiply + 0.9 pJ add
    assert mac_energy_pj(32, 8, 1) == mac_energy_pj(8, 32, 1) == pytest.approx(4.6)


def test_layer_energy_by_hand(lenet_specs, mixed_policy, make_target):
    conv2 = effective_layers(lenet_specs, mixed_policy)[1]
    # w4a4, 500 terms: multiply 0.2*16/64 = 0.05; 17-bit add 0.03 + 0.07*9/24 = 0.05625 -> 0.10625 pJ
    # compute on zero-skipping hardware: 800,000 MACs * 0.10625 = 85,000 pJ
    # memory: weights 50,000 + index 25,000 + inputs 11,520 + outputs 12,800 = 99,320 bits
    #   * 20 pJ/bit = 1,986,400 pJ
    assert layer_energy_pj(conv2, make_target("bitserial", skips_zeros=True)) == pytest.approx(2_071_400)
    # dense hardware multiplies the zeros: 1,600,000 * 0.10625 = 170,000 pJ, and reads them:
    #   (25,000*4 + 11,520 + 12,800) = 124,320 bits * 20 = 2,486,400 pJ
    assert layer_energy_pj(conv2, make_target("bitserial", skips_zeros=False)) == pytest.approx(2_656_400)
    # on-chip SRAM at 0.16 pJ/bit: 99,320 * 0.16 = 15,891.2 pJ
    sram = make_target("bitserial", memory_pj_per_bit=0.16)
    assert layer_energy_pj(conv2, sram) == pytest.approx(85_000 + 15_891.2)


def test_float_layer_energy_by_hand(lenet_specs, make_target):
    conv1 = effective_layers(lenet_specs, Policy.float([s.name for s in lenet_specs]))[0]
    # compute 288,000 MACs * 4.6 pJ = 1,324,800 pJ
    # traffic: weights 500*32 = 16,000; inputs 1*28*28*32 = 25,088; outputs 20*24*24*32 = 368,640
    #   = 409,728 bits * 20 pJ/bit = 8,194,560 pJ
    assert layer_energy_pj(conv1, make_target("int8")) == pytest.approx(1_324_800 + 8_194_560)
