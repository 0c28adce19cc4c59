"""First-order energy: compute (per MAC, Horowitz ISSCC 2014, 45 nm) plus memory traffic.

Per multiply-accumulate at b_w x b_a integer bits:
  multiply = 0.2 pJ * b_w * b_a / 64            (an 8x8 multiply costs 0.2 pJ)
  add      = 0.03 pJ at 8 bits ... 0.1 pJ at 32 bits, linear in the accumulator width,
             which is the overflow-free width b_w + b_a + ceil(log2(terms summed)),
             clamped to [8, 32] bits.
Either operand at 32 bits means float: 3.7 pJ multiply + 0.9 pJ add.
Memory: every bit of ``hardware.size.traffic_bits`` (weights as the target reads them,
input and output activations) costs the target's ``memory_pj_per_bit``
(DRAM ~20 pJ/bit; an 8 KB SRAM ~0.16 pJ/bit). Energy_l = MACs executed * MAC energy +
traffic * pJ/bit, where a target that does not skip zeros executes the dense MACs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .policy import FLOAT_BITS
from .size import traffic_bits

if TYPE_CHECKING:
    from .cost import EffectiveLayer
    from .targets import Target

INT8_MULTIPLY_PJ = 0.2
INT_ADD_PJ_AT_8_BITS = 0.03
INT_ADD_PJ_AT_32_BITS = 0.1
FLOAT_MULTIPLY_PJ = 3.7
FLOAT_ADD_PJ = 0.9


def accumulator_bits(weight_bits: int, activation_bits: int, terms: int) -> int:
    """Width of an accumulator that cannot overflow summing ``terms`` products, in [8, 32]."""
    width = weight_bits + activation_bits + math.ceil(math.log2(max(terms, 1)))
    return min(32, max(8, width))


def integer_add_pj(bits: int) -> float:
    """Linear interpolation between Horowitz's 8-bit (0.03 pJ) and 32-bit (0.1 pJ) adds."""
    slope = (INT_ADD_PJ_AT_32_BITS - INT_ADD_PJ_AT_8_BITS) / (32 - 8)
    return INT_ADD_PJ_AT_8_BITS + slope * (bits - 8)


def mac_energy_pj(weight_bits: int, activation_bits: int, terms: int) -> float:
    """Energy of one multiply-accumulate in a dot product of ``terms`` products."""
    if weight_bits == FLOAT_BITS or activation_bits == FLOAT_BITS:
        return FLOAT_MULTIPLY_PJ + FLOAT_ADD_PJ
    multiply = INT8_MULTIPLY_PJ * weight_bits * activation_bits / 64
    return multiply + integer_add_pj(accumulator_bits(weight_bits, activation_bits, terms))


def compute_energy_pj(layer: "EffectiveLayer", target: "Target") -> float:
    per_mac = mac_energy_pj(layer.weight_bits, layer.activation_bits, layer.terms_per_output)
    return target.macs_executed(layer) * per_mac


def memory_energy_pj(layer: "EffectiveLayer", target: "Target") -> float:
    return traffic_bits(layer, target.skips_zeros) * target.memory_pj_per_bit


def layer_energy_pj(layer: "EffectiveLayer", target: "Target") -> float:
    return compute_energy_pj(layer, target) + memory_energy_pj(layer, target)
