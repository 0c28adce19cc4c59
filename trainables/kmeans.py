"""Weight quantizers of the constrained-gradient baseline.

``kmeans``: the per-layer codebook of Yang et al. (CVPR 2020): an exact zero plus at most
2^b non-zero levels fitted by 1-D k-means (Lloyd) to the layer's non-zero values. Zero costs
no code: pruned weights are not stored (the sparse index says where they are), so b bits
address the 2^b non-zero levels and the size is b * nnz, the count the budget charges.
A kept weight nearest to zero becomes zero, which only lowers nnz.

``uniform``: the symmetric per-output-channel grid the evolved policies use
(``trainables.quantize.WeightTransform``), so the two methods can also be compared on one
quantizer.

Lloyd runs on the sorted values: every cluster is a contiguous run, found with
``searchsorted`` on the midpoints between levels, and its sum comes from a prefix sum, so an
iteration costs O(levels * log n) after one sort. The start is deterministic (quantiles).

``install_final_transforms`` fixes mask and bits for the final fine-tune: ``CodebookWeight``
(straight-through snap to the levels) for k-means, ``compress.apply_policy`` for uniform.
"""

from __future__ import annotations

import torch

from hardware.policy import check_bits

from .knapsack import check_quantizer

LLOYD_ITERATIONS = 30


def fit_codebook(values: torch.Tensor, bits: int, *, iterations: int = LLOYD_ITERATIONS) -> torch.Tensor:
    """Sorted levels: exactly one 0 and at most 2^bits non-zero levels fitted to the
    non-zero entries of ``values`` (any shape). Float64 on the values' device."""
    check_bits(bits, "bits")
    data = values.detach().reshape(-1).double()
    data = data[data != 0].sort().values
    zero = torch.zeros(1, dtype=torch.float64, device=data.device)
    if data.numel() == 0:
        return zero
    count = min(2**bits, data.numel())
    # Quantile start: dense regions (near zero for weights) get more levels than linspace gives.
    positions = ((torch.arange(count, device=data.device, dtype=torch.float64) + 0.5) / count * data.numel()).long()
    levels = data[positions.clamp_max(data.numel() - 1)].unique()
    prefix = torch.cat([zero, data.cumsum(0)])
    for _ in range(iterations):
        updated = _lloyd_step(data, prefix, levels)
        if torch.equal(updated, levels):
            break
        levels = updated
    return torch.cat([zero, levels]).unique()  # unique sorts and merges equal levels


def _lloyd_step(data: torch.Tensor, prefix: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """One Lloyd iteration with the zero level fixed: assign, then move each non-zero level
    to the mean of its run; a level left without values stays where it is."""
    with_zero = torch.cat([levels, torch.zeros(1, dtype=levels.dtype, device=levels.device)]).unique()
    bounds = torch.searchsorted(data, (with_zero[1:] + with_zero[:-1]) / 2, right=True)  # ties go lower, as in snap
    starts = torch.cat([bounds.new_zeros(1), bounds])
    ends = torch.cat([bounds, bounds.new_full((1,), data.numel())])
    counts = ends - starts
    means = (prefix[ends] - prefix[starts]) / counts.clamp_min(1)
    moved = torch.where(counts > 0, means, with_zero)
    return moved[with_zero != 0].unique()


def snap_to_codebook(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Every value replaced by its nearest level (``codebook`` sorted; ties go to the lower)."""
    codebook = codebook.to(values.device)
    if codebook.numel() == 1:
        return torch.zeros_like(values)
    midpoints = ((codebook[1:] + codebook[:-1]) / 2).to(values.dtype)
    return codebook.to(values.dtype)[torch.bucketize(values, midpoints)]


def uniform_quantize(values: torch.Tensor, bits: int) -> torch.Tensor:
    """The evolved policies' weight quantizer at its initial scales: per output channel,
    symmetric, MSE-clipped on the full signed range at <= 4 bits (``trainables.scale_search``)."""
    from .quantize import WeightTransform

    with torch.no_grad():
        return WeightTransform(values, None, bits)(values.detach())


def quantize(values: torch.Tensor, bits: int, quantizer: str) -> torch.Tensor:
    """``values`` on ``quantizer``'s grid for ``bits`` (a fresh codebook for k-means)."""
    if check_quantizer(quantizer) == "uniform":
        return uniform_quantize(values, bits)
    return snap_to_codebook(values.detach(), fit_codebook(values, bits))


class _StraightThroughSnap(torch.autograd.Function):
    """Forward: the nearest codebook level, exactly. Backward: the gradient unchanged."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        return snap_to_codebook(weight, codebook)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output, None


class CodebookWeight(torch.nn.Module):
    """Parametrization for the final fine-tune: ``snap(weight * mask)`` with a straight-through
    gradient. Mask and bits are fixed; ``refit`` moves the levels to the current weights."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bits: int) -> None:
        super().__init__()
        check_bits(bits, "weight_bits")
        self.weight_bits = bits
        self.register_buffer("mask", mask.to(weight.device, weight.dtype))
        self.register_buffer("codebook", fit_codebook(weight * self.mask, bits))

    def refit(self, weight: torch.Tensor) -> None:
        self.codebook = fit_codebook(weight.detach() * self.mask, self.weight_bits)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _StraightThroughSnap.apply(weight * self.mask, self.codebook)


def install_final_transforms(model: torch.nn.Module, layers, masks, policy, specs, quantizer: str,
                             calibration_inputs: torch.Tensor):
    """Fix masks and bits for the final fine-tune; return a callable that refits the k-means
    levels to the current weights (a no-op for the uniform grid, whose scale follows the
    weights by itself). Inputs are fake-quantized as the policy says (b_a < 32: BOPs budgets).

    ``uniform`` goes through ``trainables.compress.apply_policy``, exactly as an evolved
    policy does: its magnitude mask keeps round((1-s)*N) weights, which are W's non-zeros."""
    from torch.nn.utils import parametrize

    from .compress import apply_policy
    from .quantize import InputQuantizer, observe_input_ranges, quantize_layer_input

    if check_quantizer(quantizer) == "uniform":
        apply_policy(model, policy, specs, calibration_inputs)
        return lambda: None
    transforms = []
    for spec, layer, mask in zip(specs, layers, masks):
        transform = CodebookWeight(layer.weight.detach(), mask, policy[spec.name].weight_bits)
        parametrize.register_parametrization(layer, "weight", transform)
        transforms.append((layer, transform))
    quantized_inputs = {spec.name: layer for spec, layer in zip(specs, layers)
                        if policy[spec.name].activation_bits < 32}
    if quantized_inputs:
        ranges = observe_input_ranges(model, quantized_inputs, calibration_inputs.to(layers[0].weight.device))
        for name, layer in quantized_inputs.items():
            bits = policy[name].activation_bits
            layer.input_quantizer = InputQuantizer(bits, *ranges[name], device=layer.weight.device)
            layer.register_forward_pre_hook(quantize_layer_input)

    def refit() -> None:
        for layer, transform in transforms:
            transform.refit(layer.parametrizations.weight.original)

    return refit


def nonzero_counts(layers) -> list[int]:
    """Non-zero entries of each layer's effective weight (through its transforms)."""
    with torch.no_grad():
        return [int(torch.count_nonzero(layer.weight)) for layer in layers]
