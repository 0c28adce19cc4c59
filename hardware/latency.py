"""Roofline latency per layer: max(MACs / peak(b_w, b_a), traffic / bandwidth).

Layers run one after another, so a model's latency is the sum over layers. The peak
multiply-accumulate rate depends on the bit-widths in a way each target kind defines
(see ``hardware.targets``); published latency tables (HAQ: 8 -> 4 bits gives 2.5x, not
4x) are why these targets exist beside BOPs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .policy import FLOAT_BITS
from .size import traffic_bits

if TYPE_CHECKING:
    from .cost import EffectiveLayer
    from .targets import Target

BRICK_WIDTHS = (2, 4, 8)


def _bitserial_peak(peak_1x1: float, weight_bits: int, activation_bits: int) -> float:
    return peak_1x1 / (weight_bits * activation_bits)


def _brick_width(bits: int) -> int:
    return next(width for width in BRICK_WIDTHS if bits <= width)


def _bricks_peak(peak_8x8: float, weight_bits: int, activation_bits: int) -> float:
    # 8x8 fuses 16 2x2 bricks; a w x a multiply needs (w/2)*(a/2) of them.
    return peak_8x8 * (8 // _brick_width(weight_bits)) * (8 // _brick_width(activation_bits))


def _int8_peak(peak_int8: float, weight_bits: int, activation_bits: int) -> float:
    return peak_int8  # narrower operands are padded to 8 bits: no speed-up


# Integer peak rate per target kind; keys must equal hardware.targets.TARGET_KINDS.
PEAK_BY_KIND: dict[str, Callable[[float, int, int], float]] = {
    "bitserial": _bitserial_peak,
    "bricks": _bricks_peak,
    "int8": _int8_peak,
}


def peak_macs_per_s(target: "Target", weight_bits: int, activation_bits: int) -> float:
    """Peak multiply-accumulates per second at these operand widths; 32 bits means float."""
    if weight_bits == FLOAT_BITS or activation_bits == FLOAT_BITS:
        return target.float_peak_macs_per_s
    return PEAK_BY_KIND[target.kind](target.peak_macs_per_s, weight_bits, activation_bits)


def compute_time_s(layer: "EffectiveLayer", target: "Target") -> float:
    return target.macs_executed(layer) / peak_macs_per_s(target, layer.weight_bits, layer.activation_bits)


def memory_time_s(layer: "EffectiveLayer", target: "Target") -> float:
    return traffic_bits(layer, target.skips_zeros) / target.bandwidth_bits_per_s


def layer_latency_s(layer: "EffectiveLayer", target: "Target") -> float:
    """Roofline: whichever of compute and memory transfer takes longer bounds the layer."""
    return max(compute_time_s(layer, target), memory_time_s(layer, target))
