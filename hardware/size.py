"""Model size and memory traffic in bits.

Two sizes are reported because papers count differently:

* *comparable* = sum nnz_l * b_w, the count of Yang et al. (CVPR 2020) and most
  compression papers: kept weights at their bit-width, nothing else.
* *honest* = comparable + what a deployed model must also store:
  the sparse index of unstructured sparsity (``sparse_index_bits``), one 32-bit scale per
  kept output channel when weights are quantized, and 32-bit biases. A BatchNorm right
  after the layer is folded into it on export: its per-channel factor merges into the
  weight scale (or the float weights), its shift into the bias, so it adds one 32-bit bias
  per kept channel to a layer that had none, and nothing to one that had.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .policy import FLOAT_BITS

if TYPE_CHECKING:
    from .cost import EffectiveLayer

PARAMETER_BITS = 32  # scales and biases (a folded BatchNorm's too) stay at float width


def sparse_index_bits(slots: int, nnz: int) -> int:
    """Bits to record which of ``slots`` weight positions hold the ``nnz`` kept weights.

    The rule: the cheaper of a bitmask (one bit per slot) and relative indexing, where every
    kept weight carries the gap to the previous one in ceil(log2(slots / nnz)) + 1 bits --
    wide enough for gaps up to twice the mean -- and a longer gap takes filler entries of
    2^g - 1 slots each (Deep Compression, Han et al. 2016). The fillers are priced at their
    expected count for kept weights spread at random (``expected_fillers``); magnitude
    pruning clusters its zeros a little more than that. Dense layers need none.
    """
    if nnz <= 0 or nnz >= slots:
        return 0
    gap_bits = relative_index_gap_bits(slots, nnz)
    entries = nnz + expected_fillers(slots, nnz, gap_bits)
    return min(slots, math.ceil(entries * gap_bits))


def expected_fillers(slots: int, nnz: int, gap_bits: int) -> float:
    """Expected filler entries of a relative index at ``gap_bits`` when the ``nnz`` kept weights
    sit at random among ``slots``: gaps are geometric with p = nnz / slots, a gap L takes
    floor((L - 1) / M) fillers (M = 2^g - 1), and E = nnz * q / (1 - q) with q = (1 - p)^M."""
    q = (1.0 - nnz / slots) ** (2**gap_bits - 1)
    return nnz * q / (1.0 - q)


def relative_index_gap_bits(slots: int, nnz: int) -> int:
    """Width of one relative-index entry for ``nnz`` kept weights among ``slots`` positions
    (``sparse_index_bits``; the export writes its relative index at this width)."""
    return math.ceil(math.log2(slots / nnz)) + 1


def comparable_size_bits(layer: "EffectiveLayer") -> int:
    """Kept weights at their bit-width (Yang et al.'s count)."""
    return layer.nnz * layer.weight_bits


def honest_size_bits(layer: "EffectiveLayer") -> int:
    """Comparable size plus sparse index, per-channel scales and biases (a folded BatchNorm's shift)."""
    bits = comparable_size_bits(layer) + sparse_index_bits(layer.dense_weights, layer.nnz)
    if layer.weight_bits < FLOAT_BITS:
        bits += PARAMETER_BITS * layer.kept_out_channels
    if layer.has_bias:
        bits += PARAMETER_BITS * layer.kept_out_channels
    else:  # a folded BatchNorm's shift becomes the bias
        bits += PARAMETER_BITS * layer.kept_norm_channels
    return bits


def weight_traffic_bits(layer: "EffectiveLayer", skips_zeros: bool) -> int:
    """Weight bits read per inference. A zero-skipping machine reads the kept weights and
    their sparse index; a dense machine stores and reads every slot, zeros included (so
    unstructured sparsity saves it no traffic, while removed channels do)."""
    if skips_zeros:
        return comparable_size_bits(layer) + sparse_index_bits(layer.dense_weights, layer.nnz)
    return layer.dense_weights * layer.weight_bits


def traffic_bits(layer: "EffectiveLayer", skips_zeros: bool) -> int:
    """Bits moved to and from memory for one layer: weights + input + output activations.

    Both input and output activations count at the layer's own activation bits: each layer
    is priced alone, without knowing which (possibly several) consumers re-quantize its
    output, and an unfused accelerator writes the output and reads it back, so charging
    both ends is deliberate.
    """
    activations = layer.input_activations + layer.output_activations
    return weight_traffic_bits(layer, skips_zeros) + activations * layer.activation_bits
