"""Fake-quantization transforms with learned step sizes: weights through a parametrization,
layer inputs through a forward pre-hook.

Both round on a grid ``scale x k`` for integers k in [k_low, k_high] with ``scale`` a
parameter trained with the network (LSQ, Esser et al., ICLR 2020): the values pass
straight through inside the range (zero gradient where clipped), and the step's gradient
is scaled by 1 / sqrt(N x Q_p) (N: elements one scale quantizes, per sample for inputs;
Q_p: the positive bound) so that scales and weights learn at comparable rates. Scales
start from the MSE-optimal grids of ``trainables.scale_search``; ``fine_tune`` gives them
their own parameter group (``step_size_parameters``).

* ``WeightTransform`` is the single parametrization on a layer's ``weight``: multiply by a
  fixed pruning mask, then fake-quantize per output channel, symmetric (zero point 0) on
  [quant_min, quant_max] (``scale_search.weight_grid``). Masking before quantizing keeps
  pruned weights exactly zero (0 / scale rounds to 0, and contributes nothing to the
  scale's gradient).
* ``ChannelMask`` zeroes pruned output channels of a bias or of the BatchNorm that
  follows a channel-pruned layer, so consumers really read zeros from those channels.
* ``InputQuantizer`` fake-quantizes a layer's input per tensor, affine over 0..2^b-1 with
  a fixed integer zero point and a learned scale, calibrated once on a fixed batch (the
  scale of an input that needs no gradient, the data itself, stays at its calibration).

One autograd function (``_LearnedStepQuantize``) does both, without Python per element; on
CPU the per-tensor case takes a fast path (Python-float grid, hardtanh's backward for the
value mask and two dot products for the step's gradient) because torch's own CPU
fake-quant kernel does not vectorize: 2.9 ms vs 0.25 ms forward for 512k values here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hardware.policy import FLOAT_BITS, check_bits

from .hooks import observe_forward
from .scale_search import (MIN_SCALE, affine_grid, max_abs_channel_scales, mse_channel_scales, mse_input_range,
                           weight_grid)

SCALE_INITS = ("mse", "max")  # MSE-searched grids (default) or the max-abs / min-max extremes


def check_scale_init(scale_init: str) -> str:
    if scale_init not in SCALE_INITS:
        raise ValueError(f"scale_init={scale_init!r}; valid choices: {list(SCALE_INITS)}")
    return scale_init


def _step(scale: torch.Tensor) -> torch.Tensor:
    """The step size a learned scale parameter stands for: |scale|, floored. abs() rather than
    a clamp so that the gradient still flows through a scale that an update drove to or
    below zero (a clamp would freeze it there, the channel rounded to zero for good)."""
    return scale.abs().clamp_min(MIN_SCALE)


class WeightTransform(nn.Module):
    """Parametrization: ``fake_quant(weight * mask)`` with a learned step per output channel;
    either part may be absent.

    Args:
        weight: the layer's float weight; the initial scales are fitted to it (masked).
        mask: pruning mask (same shape, or one value per output channel) or None.
        weight_bits: 2..32; 32 keeps the weight float (then a mask is required).
        scale_init: "mse" (clip searched, full signed range, at <= 4 bits) or "max".
    """

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor | None, weight_bits: int, *,
                 scale_init: str = "mse") -> None:
        super().__init__()
        check_bits(weight_bits, "weight_bits")
        check_scale_init(scale_init)
        if mask is None and weight_bits == FLOAT_BITS:
            raise ValueError("WeightTransform needs a mask or weight_bits < 32; leave the layer untouched instead")
        if mask is not None and mask.dim() != weight.dim():
            mask = mask.reshape(-1, *([1] * (weight.dim() - 1)))  # a per-channel mask broadcasts
        self.register_buffer("mask", None if mask is None else mask.to(weight.device, weight.dtype))
        self.weight_bits = weight_bits
        if weight_bits == FLOAT_BITS:
            return
        self.quant_min, self.quant_max = weight_grid(weight_bits, scale_init)
        with torch.no_grad():
            rows = self._masked(weight.detach()).flatten(1)
            if self.quant_min == -self.quant_max:
                scales = max_abs_channel_scales(rows, self.quant_max)
            else:
                scales = mse_channel_scales(rows, self.quant_min, self.quant_max)
        self.scale = nn.Parameter(scales.reshape(-1, *([1] * (weight.dim() - 1))).clone())
        self.grad_factor = 1.0 / math.sqrt(weight[0].numel() * self.quant_max)

    def _masked(self, weight: torch.Tensor) -> torch.Tensor:
        return weight if self.mask is None else weight * self.mask

    def channel_scales(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The per-output-channel step sizes ``forward`` quantizes with, shape (C,) (the export
        reads them: integer weight = round(masked weight / scale) clamped to [quant_min,
        quant_max]). ``weight`` is accepted for the older signature and not needed."""
        if self.weight_bits == FLOAT_BITS:
            raise ValueError("this WeightTransform only masks (weight_bits=32): it has no scales")
        return _step(self.scale).detach().reshape(-1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        masked = self._masked(weight)
        if self.weight_bits == FLOAT_BITS:
            return masked
        return _LearnedStepQuantize.apply(masked, _step(self.scale), self.quant_min, self.quant_max,
                                          self.grad_factor)

    def extra_repr(self) -> str:
        return f"bits={self.weight_bits}, range=[{getattr(self, 'quant_min', '')}, {getattr(self, 'quant_max', '')}]"


class ChannelMask(nn.Module):
    """Parametrization zeroing pruned channels of a 1-D per-channel tensor (bias, BN affine)."""

    def __init__(self, mask: torch.Tensor, like: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.reshape(-1).to(like.device, like.dtype))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.mask


class InputQuantizer(nn.Module):
    """Per-tensor affine fake quantization over 0..2^b-1: a fixed integer zero point from the
    calibrated range [low, high] and a learned scale starting at that range's step."""

    def __init__(self, activation_bits: int, low: float, high: float, device: torch.device | None = None) -> None:
        super().__init__()
        check_bits(activation_bits, "activation_bits")
        if activation_bits == FLOAT_BITS:
            raise ValueError("InputQuantizer needs activation_bits < 32; leave the input float instead")
        self.activation_bits = activation_bits
        self.quant_max = 2**activation_bits - 1
        scale, zero_point = affine_grid(activation_bits, low, high)
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float32, device=device))
        self.register_buffer("zero_point", torch.tensor(zero_point, dtype=torch.int32, device=device))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # Read the zero point each call (cheap) so that a loaded state_dict takes effect.
        zero_point = int(self.zero_point)
        k_low, k_high = -zero_point, self.quant_max - zero_point
        # LSQ's N counts one sample's elements, not the batch (Q_p: the positive bound, >= 1)
        grad_factor = 1.0 / math.sqrt(inputs[0].numel() * max(k_high, 1))
        scale = _step(self.scale)
        if not inputs.requires_grad:
            # The model's own input (data): its distribution never changes, so the calibrated
            # MSE range stays; learning it would cost the first layer a full input-gradient
            # convolution (LeNet-5 on CPU: ~+30% per step).
            scale = scale.detach()
        return _LearnedStepQuantize.apply(inputs, scale, k_low, k_high, grad_factor)

    def quant_params(self) -> tuple[float, int, int, int]:
        """(scale, zero_point, quant_min, quant_max) of the affine grid ``forward`` rounds to
        (the export writes them into QuantizeLinear/DequantizeLinear nodes)."""
        return float(_step(self.scale.detach())), int(self.zero_point), 0, self.quant_max

    def extra_repr(self) -> str:
        return f"bits={self.activation_bits}, scale={self.quant_params()[0]:.4g}, zero_point={int(self.zero_point)}"


class _LearnedStepQuantize(torch.autograd.Function):
    """y = scale x clamp(round(x / scale), k_low, k_high), with LSQ's gradients:

    dy/dx = 1 strictly inside the grid's range, else 0 (straight-through with clipping, as
    torch's fake-quant ops); dy/dscale = (y - x [inside]) / scale, i.e. round(x/s) - x/s
    inside and the bound outside, summed to the scale's shape and times ``grad_factor``.
    ``scale`` is 0-dim (per tensor) or broadcasts over ``inputs`` (per channel). The
    output is saved rather than recomputed: it is what the step's gradient needs."""

    @staticmethod
    def forward(ctx, inputs, scale, k_low: int, k_high: int, grad_factor: float):
        fast = scale.dim() == 0 and not inputs.is_cuda
        if fast:  # Python floats: the vectorized CPU path (see the module docstring)
            step = float(scale)
            outputs = inputs.mul(1.0 / step).round_().clamp_(k_low, k_high).mul_(step)
        else:
            outputs = inputs.mul(scale.reciprocal()).round_().clamp_(k_low, k_high).mul_(scale)
        ctx.save_for_backward(inputs, outputs, scale)
        ctx.grid = (k_low, k_high, grad_factor, fast)
        return outputs

    @staticmethod
    def backward(ctx, grad_output):
        inputs, outputs, scale = ctx.saved_tensors
        k_low, k_high, grad_factor, fast = ctx.grid
        if fast:
            step = float(scale)
            # hardtanh's backward is "pass the gradient strictly inside (low, high)", vectorized
            grad_input = torch.ops.aten.hardtanh_backward(grad_output, inputs, (k_low - 0.5) * step,
                                                          (k_high + 0.5) * step)
            flat_grad, flat_input = grad_output.reshape(-1), inputs.reshape(-1)
            total = torch.dot(flat_grad, outputs.reshape(-1)) - torch.dot(grad_input.reshape(-1), flat_input)
            grad_scale = total * (grad_factor / step)
        else:
            inside = (inputs > (k_low - 0.5) * scale) & (inputs < (k_high + 0.5) * scale)
            grad_input = grad_output * inside
            total = (grad_output * outputs - grad_input * inputs).sum_to_size(scale.shape)
            grad_scale = total * grad_factor / scale
        return grad_input, grad_scale, None, None, None


def step_size_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The learned scales of every weight transform and input quantizer in ``model`` (for
    their own optimizer group: higher lr, no weight decay)."""
    return [module.scale for module in model.modules()
            if isinstance(module, (WeightTransform, InputQuantizer)) and isinstance(getattr(module, "scale", None),
                                                                                    nn.Parameter)]


def quantize_layer_input(layer: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: hand the layer a fake-quantized input (module-level so models
    holding it still deep-copy and pickle)."""
    return (layer.input_quantizer(args[0]), *args[1:])


def observe_input_ranges(model: nn.Module, layers: dict[str, nn.Module], inputs: torch.Tensor,
                         activation_bits: dict[str, int] | None = None) -> dict[str, tuple[float, float]]:
    """One eval-mode forward pass over ``inputs``, recording each named layer's input range:
    min/max, or with ``activation_bits`` (name -> bits) the MSE-optimal range at that width
    (``scale_search.mse_input_range``). A layer called more than once gets the union.

    Eval mode so that BatchNorm uses (and does not update) its running statistics."""
    ranges: dict[str, tuple[float, float]] = {}

    def recorder(name: str):
        def record(_layer: nn.Module, args: tuple) -> None:
            values = args[0].detach()
            if activation_bits is None:
                low, high = values.amin().item(), values.amax().item()
            else:
                low, high = mse_input_range(values, activation_bits[name])
            if name in ranges:  # a layer called more than once: the range must cover every call
                low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
            ranges[name] = (low, high)

        return record

    observe_forward(model, inputs, [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()])
    unseen = sorted(set(layers) - set(ranges))
    if unseen:
        raise ValueError(f"layers {unseen} were not called in the calibration forward pass; check the layer names")
    return ranges
