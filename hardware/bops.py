"""Bit operations (BOPs): multiply-accumulates weighted by the product of operand widths.

BOPs_l = MACs * b_w * b_a. The *ideal* count uses the MACs a zero-skipping machine does
(kept weights only); the *dense* count uses the MACs of hardware that multiplies the zeros
of unstructured sparsity too (channel pruning removes whole channels, so it shrinks both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .cost import EffectiveLayer
    from .specs import LayerSpec


def layer_bops(layer: "EffectiveLayer") -> int:
    """Ideal BOPs: (1 - s) * M * b_w * b_a, or H*W*C'_out*(C'_in/g)*k_h*k_w * b_w * b_a for channels."""
    return layer.macs_effective * layer.weight_bits * layer.activation_bits


def layer_bops_dense(layer: "EffectiveLayer") -> int:
    """BOPs on hardware that cannot skip zero weights."""
    return layer.macs_dense * layer.weight_bits * layer.activation_bits


def uniform_bops(specs: Sequence["LayerSpec"], bits: int) -> int:
    """BOPs of the dense model at one width for weights and activations (32 -> the FP32 reference)."""
    return sum(spec.macs for spec in specs) * bits * bits
