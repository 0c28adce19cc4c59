"""Initial quantization grids chosen by mean-squared error, not by the extremes.

Max-abs scales at 2-3 bits spend the few levels on the rare large values and round most
weights to zero; clipping the range minimises the total (rounding + clipping) error instead
(ACIQ, Banner et al.; DESIGN.md "Quantizer quality decides low-bit accuracy"). Both searches
try the same fixed grid of clip ratios of the max-abs / min-max range and keep the one with
the least squared error: per output channel for weights (all channels at once, one tensor
op per block of candidates), per tensor for a layer's inputs on the calibration batch.

Which range a weight grid uses:

* up to ``CLIP_MAX_BITS`` bits the full signed range [-2^(b-1), 2^(b-1)-1] with an
  MSE-searched scale: at 2 bits the narrow range has only the 3 levels {-1, 0, 1};
* above it, the symmetric narrow range [-(2^(b-1)-1), 2^(b-1)-1] with the max-abs scale:
  clipping gains nothing measurable at 8 bits, and the narrow range is what int8 kernels
  with symmetric weights expect.

The learned step sizes (``trainables.quantize``) start from these grids.
"""

from __future__ import annotations

import torch

CLIP_MAX_BITS = 4
# Candidate clip ratios of the max-abs (weights) or min/max (inputs) range: 1% steps.
CLIP_RATIOS = torch.arange(1, 101, dtype=torch.float64) / 100
# Floor for a scale: an all-zero (pruned) channel would otherwise get scale 0 and divide by
# zero; any positive scale maps zeros to zero.
MIN_SCALE = 1e-12
# Candidates x elements evaluated at once by the weight search (bounds its memory).
_BLOCK_ELEMENTS = 1 << 22


def weight_grid(weight_bits: int, scale_init: str) -> tuple[int, int]:
    """(quant_min, quant_max): the integer range a weight grid clamps to (see the module doc)."""
    half = 2 ** (weight_bits - 1)
    if scale_init == "mse" and weight_bits <= CLIP_MAX_BITS:
        return -half, half - 1
    return -(half - 1), half - 1


def max_abs_channel_scales(rows: torch.Tensor, quant_max: int) -> torch.Tensor:
    """Per-row scale max|w| / quant_max: the largest weight lands on the top level."""
    return rows.abs().amax(dim=1).div(quant_max).clamp_min(MIN_SCALE)


def mse_channel_scales(rows: torch.Tensor, quant_min: int, quant_max: int) -> torch.Tensor:
    """Per row (output channel) of ``rows`` (C, n), the scale among ``CLIP_RATIOS`` x
    max|w| / quant_max whose grid [quant_min, quant_max] x scale gives the least squared
    error; ties go to the smaller clip. No loop over channels: each block of candidates is
    one broadcast (candidates, C, n) computation."""
    ratios = CLIP_RATIOS.to(rows.device, rows.dtype)
    candidates = (ratios[:, None] * max_abs_channel_scales(rows, quant_max)[None, :]).clamp_min(MIN_SCALE)
    block = max(1, _BLOCK_ELEMENTS // max(rows.numel(), 1))
    errors = torch.cat([
        _squared_errors(rows, chunk[:, :, None], quant_min, quant_max) for chunk in candidates.split(block)
    ])  # (candidates, C)
    best = errors.argmin(dim=0)
    return candidates[best, torch.arange(rows.shape[0], device=rows.device)]


def _squared_errors(rows: torch.Tensor, scales: torch.Tensor, quant_min: int, quant_max: int) -> torch.Tensor:
    quantized = (rows / scales).round_().clamp_(quant_min, quant_max).mul_(scales)
    return quantized.sub_(rows).square_().sum(dim=-1)


def affine_grid(activation_bits: int, low: float, high: float) -> tuple[float, int]:
    """(scale, zero_point) of the affine grid over 0..2^b-1 covering [low, high].

    The range always holds zero so that zero (padding, ReLU's negatives) stays exact; a
    ReLU output then gets zero point 0 and all 2^b levels above it."""
    quant_max = 2**activation_bits - 1
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = (high - low) / quant_max if high > low else 1.0
    zero_point = min(max(round(-low / scale), 0), quant_max)
    return scale, zero_point


def mse_input_range(inputs: torch.Tensor, activation_bits: int) -> tuple[float, float]:
    """The range ratio x [min, max] (ratio from ``CLIP_RATIOS``) whose ``affine_grid`` at
    ``activation_bits`` fake-quantizes ``inputs`` with the least squared error; ties go to
    the smaller range. One loop step per candidate, each a vectorised pass over the batch."""
    low, high = min(inputs.amin().item(), 0.0), max(inputs.amax().item(), 0.0)
    if high <= low:  # all zeros: any grid is exact
        return low, high
    quant_max = 2**activation_bits - 1
    best_error, best_range = float("inf"), (low, high)
    for ratio in CLIP_RATIOS.tolist():
        scale, zero_point = affine_grid(activation_bits, ratio * low, ratio * high)
        quantized = inputs.mul(1.0 / scale).round_().clamp_(-zero_point, quant_max - zero_point).mul_(scale)
        error = quantized.sub_(inputs).square_().sum().item()
        if error < best_error:
            best_error, best_range = error, (ratio * low, ratio * high)
    return best_range
