"""Fake-quantization transforms: weights through a parametrization, layer inputs through a
forward pre-hook. Both use torch's fused fake-quant kernels, whose backward is the
straight-through estimator (with clipping), so training sees no Python per element; on CPU
the input path uses a vectorized twin of torch's per-tensor kernel (``_FakeQuantizeOnGrid``).

* ``WeightTransform`` is the single parametrization on a layer's ``weight``: multiply by a
  fixed pruning mask, then fake-quantize per output channel, symmetric and narrow range
  [-(2^(b-1)-1), 2^(b-1)-1] with scale = max|w_masked| / qmax recomputed every forward.
  Masking before quantizing keeps pruned weights exactly zero (0 / scale rounds to 0).
* ``ChannelMask`` zeroes pruned output channels of a bias or of the BatchNorm that
  follows a channel-pruned layer, so consumers really read zeros from those channels.
* ``InputQuantizer`` fake-quantizes a layer's input per tensor, affine over 0..2^b-1 with
  a zero point, on a range calibrated once and fixed afterwards.
"""

from __future__ import annotations

import torch
from torch import nn

from hardware.policy import FLOAT_BITS, check_bits

from .hooks import observe_forward

# A channel whose weights are all zero (pruned) would give scale 0 and a division by zero;
# any positive scale maps zeros to zero, so a tiny floor is enough.
MIN_SCALE = 1e-12


class WeightTransform(nn.Module):
    """Parametrization: ``fake_quant(weight * mask)``; either part may be absent."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor | None, weight_bits: int) -> None:
        super().__init__()
        check_bits(weight_bits, "weight_bits")
        if mask is None and weight_bits == FLOAT_BITS:
            raise ValueError("WeightTransform needs a mask or weight_bits < 32; leave the layer untouched instead")
        if mask is not None and mask.dim() != weight.dim():
            mask = mask.reshape(-1, *([1] * (weight.dim() - 1)))  # a per-channel mask broadcasts
        self.register_buffer("mask", None if mask is None else mask.to(weight.device, weight.dtype))
        self.weight_bits = weight_bits
        self.qmax = 2 ** (weight_bits - 1) - 1
        # zero points of a symmetric quantizer are all zero; allocated once, not per step
        zero_point = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        self.register_buffer("zero_point", zero_point)

    def channel_scales(self, weight: torch.Tensor) -> torch.Tensor:
        """The per-output-channel step sizes ``forward`` quantizes ``weight`` with (the export
        reads them: integer weight = round(masked weight / scale), clamped to [-qmax, qmax])."""
        masked = weight if self.mask is None else weight * self.mask
        with torch.no_grad():  # the scale is a statistic, not a path for gradients
            return masked.abs().flatten(1).amax(dim=1).div_(self.qmax).clamp_min_(MIN_SCALE)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        masked = weight if self.mask is None else weight * self.mask
        if self.weight_bits == FLOAT_BITS:
            return masked
        scale = self.channel_scales(weight)
        return torch.fake_quantize_per_channel_affine(masked, scale, self.zero_point, 0, -self.qmax, self.qmax)


class ChannelMask(nn.Module):
    """Parametrization zeroing pruned channels of a 1-D per-channel tensor (bias, BN affine)."""

    def __init__(self, mask: torch.Tensor, like: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.reshape(-1).to(like.device, like.dtype))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.mask


class InputQuantizer(nn.Module):
    """Per-tensor affine fake quantization over 0..2^b-1, with a fixed calibrated range."""

    def __init__(self, activation_bits: int, low: float, high: float, device: torch.device | None = None) -> None:
        super().__init__()
        check_bits(activation_bits, "activation_bits")
        if activation_bits == FLOAT_BITS:
            raise ValueError("InputQuantizer needs activation_bits < 32; leave the input float instead")
        self.activation_bits = activation_bits
        self.quant_max = 2**activation_bits - 1
        # The range always holds zero so that zero (padding, ReLU's negatives) stays exact;
        # a ReLU output then gets zero point 0 and all 2^b levels above it.
        low, high = min(float(low), 0.0), max(float(high), 0.0)
        scale = (high - low) / self.quant_max if high > low else 1.0
        zero_point = min(max(round(-low / scale), 0), self.quant_max)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32, device=device))
        self.register_buffer("zero_point", torch.tensor(zero_point, dtype=torch.int32, device=device))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.is_cuda:
            return torch.fake_quantize_per_tensor_affine(inputs, self.scale, self.zero_point, 0, self.quant_max)
        # Read from the buffers each call (cheap on CPU) so a loaded state_dict takes effect.
        scale, zero_point = float(self.scale), int(self.zero_point)
        grid = (scale, 1.0 / scale, -zero_point, self.quant_max - zero_point)
        return _FakeQuantizeOnGrid.apply(inputs, grid)

    def quant_params(self) -> tuple[float, int, int, int]:
        """(scale, zero_point, quant_min, quant_max) of the affine grid ``forward`` rounds to
        (the export writes them into QuantizeLinear/DequantizeLinear nodes)."""
        return float(self.scale), int(self.zero_point), 0, self.quant_max

    def extra_repr(self) -> str:
        return f"bits={self.activation_bits}, scale={self.scale.item():.4g}, zero_point={int(self.zero_point)}"


class _FakeQuantizeOnGrid(torch.autograd.Function):
    """CPU twin of torch.fake_quantize_per_tensor_affine: same values and gradient mask
    (tested), because that CPU kernel does not vectorize: 2.9 ms vs 0.25 ms forward for
    512k values on this machine, with the backward down from ~1.3 ms to ~0.2 ms.

    With an integer zero point z the grid is scale * k for k in [-z, qmax - z], so rounding
    x / scale and clamping k is the fake quantization. The gradient is straight-through
    where the unclamped k would lie in range, as in torch's op. ``inputs`` is saved rather
    than a mask: it is usually a ReLU output that autograd keeps anyway."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, grid: tuple[float, float, int, int]) -> torch.Tensor:
        scale, inverse_scale, k_low, k_high = grid
        ctx.save_for_backward(inputs)
        ctx.grid = grid
        return inputs.mul(inverse_scale).round_().clamp_(k_low, k_high).mul_(scale)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (inputs,) = ctx.saved_tensors
        scale, _, k_low, k_high = ctx.grid
        # hardtanh's backward is exactly "pass the gradient strictly inside (low, high)",
        # vectorized; comparisons + masked_fill took 6x longer here.
        low, high = (k_low - 0.5) * scale, (k_high + 0.5) * scale
        return torch.ops.aten.hardtanh_backward(grad_output, inputs, low, high), None


def quantize_layer_input(layer: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: hand the layer a fake-quantized input (module-level so models
    holding it still deep-copy and pickle)."""
    return (layer.input_quantizer(args[0]), *args[1:])


def observe_input_ranges(model: nn.Module, layers: dict[str, nn.Module], inputs: torch.Tensor) -> dict[str, tuple[float, float]]:
    """One eval-mode forward pass over ``inputs``, recording each named layer's input min/max.

    Eval mode so that BatchNorm uses (and does not update) its running statistics."""
    ranges: dict[str, tuple[float, float]] = {}

    def recorder(name: str):
        def record(_layer: nn.Module, args: tuple) -> None:
            low, high = args[0].amin().item(), args[0].amax().item()
            if name in ranges:  # a layer called more than once: the range must cover every call
                low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
            ranges[name] = (low, high)

        return record

    observe_forward(model, inputs, [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()])
    unseen = sorted(set(layers) - set(ranges))
    if unseen:
        raise ValueError(f"layers {unseen} were not called in the calibration forward pass; check the layer names")
    return ranges
