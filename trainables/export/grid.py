"""A compressed layer's weights as integers on a per-channel grid, read from the model.

Two kinds of compressed model reach the export: the fake-quantized one from
``trainables.compress.apply_policy`` (a ``WeightTransform`` parametrization) and the one
``load_compressed`` rebuilds (plain dequantized weights plus a ``WeightGrid`` submodule
that remembers the grid). ``layer_grid`` reads either the same way, so a loaded model can
be saved or exported again.

The scales and the integer range come from the quantizer's own interface
(``channel_scales``, ``quant_min``/``quant_max``); nothing here recomputes them.
``integer_codes`` divides the effective weight by the scales and checks that the codes
times the scales give the weight back bit for bit: the export is exact or it fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hardware.policy import FLOAT_BITS

from ..compress import weight_transform


class WeightGrid(nn.Module):
    """The quantization grid of a loaded layer's weight (a submodule, so it moves with
    ``.to(device)``): weight bits, integer range, per-channel scales and pruning mask."""

    def __init__(self, weight_bits: int, quant_min: int, quant_max: int,
                 scales: torch.Tensor | None, mask: torch.Tensor | None) -> None:
        super().__init__()
        self.weight_bits, self.quant_min, self.quant_max = weight_bits, quant_min, quant_max
        self.register_buffer("scales", scales)
        self.register_buffer("mask", mask)


@dataclass(frozen=True)
class LayerGrid:
    """``weight`` is the effective (masked, fake-quantized) weight; ``mask`` broadcasts to
    it (per weight, or per output channel in channel mode) or is None; ``scales`` is None
    for float weights."""

    weight: torch.Tensor
    weight_bits: int
    mask: torch.Tensor | None
    scales: torch.Tensor | None
    quant_min: int
    quant_max: int

    def kept(self) -> torch.Tensor:
        """Boolean tensor of the weight's shape: the positions the mask keeps."""
        if self.mask is None:
            return torch.ones_like(self.weight, dtype=torch.bool)
        return (self.mask != 0).expand_as(self.weight)

    def kept_rows(self) -> torch.Tensor:
        """Boolean vector over output channels: those with any kept weight."""
        return self.kept().flatten(1).any(dim=1)


def layer_grid(layer: nn.Module) -> LayerGrid:
    """The grid of a compressed (or plain float) Conv2d / Linear layer."""
    with torch.no_grad():
        weight = layer.weight.detach().cpu().clone()
        transform = weight_transform(layer)
        if transform is not None:
            bits, quant_min, quant_max, scales = transform.weight_bits, 0, 0, None
            if bits < FLOAT_BITS:  # a float weight under a pruning mask has no grid
                quant_min, quant_max = transform.quant_min, transform.quant_max
                scales = transform.channel_scales().detach().cpu().float()
            mask = transform.mask
        elif isinstance(getattr(layer, "weight_grid", None), WeightGrid):
            grid = layer.weight_grid
            bits, quant_min, quant_max, scales, mask = (grid.weight_bits, grid.quant_min, grid.quant_max,
                                                        grid.scales, grid.mask)
        else:
            bits, quant_min, quant_max, scales, mask = FLOAT_BITS, 0, 0, None, None
        mask = None if mask is None else mask.detach().cpu().clone()
    scales = None if scales is None else scales.detach().cpu().clone()
    return LayerGrid(weight, bits, mask, scales, quant_min, quant_max)


def integer_codes(grid: LayerGrid, name: str = "layer") -> torch.Tensor:
    """The int64 codes with ``codes * scale == weight`` exactly (ValueError otherwise)."""
    if grid.scales is None:
        raise ValueError(f"{name}: float weights ({grid.weight_bits} bits) have no integer codes")
    scales = grid.scales.reshape(-1, *([1] * (grid.weight.dim() - 1)))
    codes = torch.round(grid.weight / scales)
    if not torch.equal(codes * scales, grid.weight):
        raise ValueError(f"{name}: the fake-quantized weights are not integer multiples of channel_scales(); "
                         "the quantizer's forward and its channel_scales disagree")
    if codes.numel() and (codes.min() < grid.quant_min or codes.max() > grid.quant_max):
        raise ValueError(f"{name}: codes span [{int(codes.min())}, {int(codes.max())}] outside the quantizer's "
                         f"range [{grid.quant_min}, {grid.quant_max}]")
    return codes.to(torch.int64)


def dequantize(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """float32 weights = codes * per-output-channel scale (the same product fake quant forms)."""
    return codes.to(torch.float32) * scales.reshape(-1, *([1] * (codes.dim() - 1)))
