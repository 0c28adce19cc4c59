"""Apply a compression policy to a torch model in place: pruning masks plus fake quantization.

Per layer named in the specs (``nn.Conv2d`` / ``nn.Linear``):

* one parametrization on ``weight`` (``quantize.WeightTransform``): a fixed pruning mask
  (``prune``) times the weight, fake-quantized per output channel when weight_bits < 32,
  with learned step sizes starting from MSE-clipped scales;
* in channel mode, the layer's bias and the BatchNorm right after it are masked too, so the
  pruned channels are zero downstream (consumers' input channels are not masked separately;
  the cost models account for them);
* when activation_bits < 32, a forward pre-hook fake-quantizes the layer's input; its zero
  point and initial (learned) scale come from an MSE range search at the policy's bit width
  over ``calibration_inputs``, done once.

A layer with sparsity 0 (keep ratio 1) and 32-bit weights keeps its plain float weight.
``strip_compression`` bakes the effective weights back into plain parameters for export.

torch cannot pickle a parametrized model (``torch.save(model)``, Ray object refs): ship the
float weights plus the policy, or ``state_dict()`` of the compressed model loaded into one
rebuilt with ``apply_policy`` (masks and zero points are buffers, learned scales parameters: they come along).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from hardware.policy import FLOAT_BITS, Policy
from hardware.specs import LayerSpec

from .hooks import observe_forward
from .prune import channel_masks, unstructured_mask
from .quantize import (ChannelMask, InputQuantizer, WeightTransform, check_scale_init, observe_input_ranges,
                       quantize_layer_input)

COMPRESSIBLE = (nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def apply_policy(
    model: nn.Module, policy: Policy, specs: Sequence[LayerSpec], calibration_inputs: torch.Tensor, *,
    scale_init: str = "mse"
) -> nn.Module:
    """Compress ``model`` in place as ``policy`` says and return it.

    ``scale_init``: "mse" starts weight scales and input ranges from the MSE-optimal grids
    (``trainables.scale_search``); "max" from max-abs / min-max (the older quantizer, kept
    to compare against)."""
    check_scale_init(scale_init)
    policy.check_matches([spec.name for spec in specs])
    if is_compressed(model):
        raise ValueError("model is already compressed; call strip_compression(model) or start from the float model")
    if not isinstance(calibration_inputs, torch.Tensor) or len(calibration_inputs) == 0:
        raise ValueError("calibration_inputs must be a non-empty batch of model inputs (N, *input_shape)")
    layers = {spec.name: compressible_layer(model, spec.name) for spec in specs}
    calibration_inputs = calibration_inputs.to(next(model.parameters()).device)
    masks = _weight_masks(layers, policy, specs)
    if policy.structure == "channel":
        _mask_biases_and_norms(model, layers, masks, specs, calibration_inputs[:1])
    for name, layer in layers.items():
        if masks[name] is not None or policy[name].weight_bits < FLOAT_BITS:
            transform = WeightTransform(layer.weight, masks[name], policy[name].weight_bits, scale_init=scale_init)
            parametrize.register_parametrization(layer, "weight", transform)
    # Calibrate after the weight transforms so the ranges are those of the compressed model.
    _attach_input_quantizers(model, layers, policy, calibration_inputs, searched=scale_init == "mse")
    return model


def _attach_input_quantizers(
    model: nn.Module, layers: dict[str, nn.Module], policy: Policy, calibration_inputs: torch.Tensor, *,
    searched: bool
) -> None:
    quantized = {name: layer for name, layer in layers.items() if policy[name].activation_bits < FLOAT_BITS}
    if not quantized:
        return
    bits = {name: policy[name].activation_bits for name in quantized} if searched else None
    ranges = observe_input_ranges(model, quantized, calibration_inputs, bits)
    for name, layer in quantized.items():
        quantizer = InputQuantizer(policy[name].activation_bits, *ranges[name], device=layer.weight.device)
        attach_input_quantizer(layer, quantizer)


def attach_input_quantizer(layer: nn.Module, quantizer: InputQuantizer) -> None:
    """Make ``layer`` fake-quantize its input with ``quantizer`` (also how the export's
    loader re-attaches a saved one). A submodule, so its range travels with .to(device)
    and state_dict()."""
    layer.input_quantizer = quantizer
    layer.register_forward_pre_hook(quantize_layer_input)


def compressible_layer(model: nn.Module, name: str) -> nn.Module:
    """The Conv2d / Linear called ``name`` in ``model``; ValueError naming what is wrong."""
    try:
        layer = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the model has no layer {name!r} (named in the specs); profile this model again") from None
    if not isinstance(layer, COMPRESSIBLE):
        kinds = [kind.__name__ for kind in COMPRESSIBLE]
        raise ValueError(f"layer {name!r} is a {type(layer).__name__}; compressible layers are {kinds}")
    return layer


def _weight_masks(layers: dict[str, nn.Module], policy: Policy, specs: Sequence[LayerSpec]) -> dict:
    """Name -> mask (None where nothing is pruned, so the layer can stay untouched)."""
    if policy.structure == "channel":
        masks = channel_masks(layers, policy, specs)
        return {name: (None if bool(mask.all()) else mask) for name, mask in masks.items()}
    return {
        name: (unstructured_mask(layer.weight, policy[name].sparsity) if policy[name].sparsity > 0 else None)
        for name, layer in layers.items()
    }


def _mask_biases_and_norms(
    model: nn.Module, layers: dict[str, nn.Module], masks: dict, specs: Sequence[LayerSpec], sample: torch.Tensor
) -> None:
    norm_after = _norms_following(model, sample)
    for spec in specs:
        mask, layer = masks[spec.name], layers[spec.name]
        if mask is None:
            continue
        if layer.bias is not None:
            parametrize.register_parametrization(layer, "bias", ChannelMask(mask, layer.bias))
        norm = norm_after.get(id(layer))
        if spec.norm_channels and norm is None:
            raise ValueError(f"layer {spec.name!r}: the specs say a BatchNorm follows it but none ran right after it")
        if norm is not None and norm.affine:
            parametrize.register_parametrization(norm, "weight", ChannelMask(mask, norm.weight))
            parametrize.register_parametrization(norm, "bias", ChannelMask(mask, norm.bias))


def _norms_following(model: nn.Module, sample: torch.Tensor) -> dict[int, nn.Module]:
    """id(layer) -> the BatchNorm executed right after it on its channels (as the profiler
    decides ``norm_channels``): pruned channels must be zeroed there too, else BN's shift
    would turn them into constants."""
    order: list[nn.Module] = []
    leaves = [module for module in model.modules() if not list(module.children())]
    observe_forward(model, sample, [leaf.register_forward_hook(lambda module, _in, _out: order.append(module))
                                    for leaf in leaves])
    return {
        id(module): following
        for module, following in zip(order, order[1:])
        if isinstance(module, COMPRESSIBLE) and isinstance(following, NORMS)
        and following.num_features == module.weight.shape[0]
    }


def _transforms(module: nn.Module, tensor_name: str) -> list[nn.Module]:
    if not parametrize.is_parametrized(module, tensor_name):
        return []
    return [p for p in module.parametrizations[tensor_name] if isinstance(p, (WeightTransform, ChannelMask))]


def weight_transform(layer: nn.Module) -> WeightTransform | None:
    """The ``WeightTransform`` on ``layer.weight`` (its ``original`` is the float weight), or None."""
    found = [t for t in _transforms(layer, "weight") if isinstance(t, WeightTransform)]
    return found[0] if found else None


def is_compressed(model: nn.Module) -> bool:
    """True when any module carries a transform that ``apply_policy`` installs."""
    return any(isinstance(module, (WeightTransform, ChannelMask, InputQuantizer)) for module in model.modules())


def compression_summary(model: nn.Module) -> dict[str, dict]:
    """Per compressed layer: nonzero effective weights (nnz), weights the mask keeps (the
    count the cost models charge; nnz can be lower where quantization rounds a kept weight
    to zero), total weights, output channels the mask keeps and those with a nonzero
    effective weight (fewer where a learned scale rounds a whole kept channel to zero),
    the largest number of distinct weight
    values in one output channel, weight/activation bits, and the input quantizer's scale
    and zero point (None for float inputs)."""
    summary: dict[str, dict] = {}
    for name, layer in model.named_modules():
        transform = weight_transform(layer)
        input_quantizer = getattr(layer, "input_quantizer", None)
        if not isinstance(layer, COMPRESSIBLE) or not (transform is not None or input_quantizer is not None):
            continue
        with torch.no_grad():
            rows = layer.weight.flatten(1)
            sorted_rows = rows.sort(dim=1).values
            distinct = 1 + (sorted_rows[:, 1:] != sorted_rows[:, :-1]).sum(dim=1)
        mask = transform.mask if transform is not None else None
        summary[name] = {
            "nnz": int(torch.count_nonzero(rows)),
            "kept_weights": rows.numel() if mask is None else int(mask.expand_as(layer.weight).count_nonzero()),
            "total": rows.numel(),
            "kept_channels": rows.shape[0] if mask is None else int(mask.expand_as(layer.weight).flatten(1).any(dim=1).sum()),
            "nonzero_channels": int(rows.any(dim=1).sum()),
            "out_channels": rows.shape[0],
            "max_distinct_per_channel": int(distinct.max()),
            "weight_bits": transform.weight_bits if transform is not None else FLOAT_BITS,
            "activation_bits": input_quantizer.activation_bits if input_quantizer is not None else FLOAT_BITS,
            "activation_scale": input_quantizer.quant_params()[0] if input_quantizer is not None else None,
            "activation_zero_point": int(input_quantizer.zero_point) if input_quantizer is not None else None,
        }
    return summary


def strip_compression(model: nn.Module) -> nn.Module:
    """Bake the effective (masked + quantized) weights, biases and BN affines into plain
    parameters and remove the transforms and input quantizers, in place.

    The input fake quantization goes too: the stripped model computes in float on the
    compressed weights (read the activation ranges from ``compression_summary`` first)."""
    for module in list(model.modules()):
        for tensor_name in ("weight", "bias"):
            if _transforms(module, tensor_name):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
        if isinstance(getattr(module, "input_quantizer", None), InputQuantizer):
            hook_ids = [key for key, hook in module._forward_pre_hooks.items() if hook is quantize_layer_input]
            for key in hook_ids:  # no public API removes a hook without its handle
                del module._forward_pre_hooks[key]
            del module.input_quantizer
    return model
