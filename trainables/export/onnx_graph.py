"""An ONNX graph of a compressed model, with QuantizeLinear/DequantizeLinear pairs.

The graph comes from ``torch.onnx.export`` (TorchScript path, ``dynamo=False``, opset 13)
of an *export copy* of the model in which

* each BatchNorm that reads only one layer's output is folded into that layer (``fold``:
  the weight scales times the norm's per-channel factor, its shift in the bias);
* channel-pruned layers are physically smaller (``channels``: kept rows, and consumers'
  columns sliced by the specs' producer/multiplier wiring);
* each quantized weight is a parametrization calling
  ``torch.fake_quantize_per_channel_affine`` (axis 0, int8 container), exported as
  QuantizeLinear -> DequantizeLinear on the weight initializer. The initializer holds the
  dequantized weights codes x scale, so QuantizeLinear returns the codes exactly and they
  already lie in the narrowed range [-(2^(b-1)-1), 2^(b-1)-1];
* each quantized input goes through a float Clip to the range the integers may span,
  [(0 - z) s, (2^b - 1 - z) s], then ``torch.fake_quantize_per_tensor_affine`` over 0..255
  (uint8 container, exported as QuantizeLinear -> DequantizeLinear): after the Clip every
  integer lies in [0, 2^b - 1]. (ONNX's INT4 types, opset 21, are not used: onnxruntime's
  CPU kernels for them are not general.)
"""

from __future__ import annotations

import copy
import operator
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from hardware.policy import FLOAT_BITS, Policy
from hardware.specs import LayerSpec

from ..compress import compressible_layer, strip_compression
from .channels import channel_slices
from .fold import fold_norms, replace_with_identity
from .grid import LayerGrid, layer_grid

ONNX_OPSET = 13
WEIGHT_CONTAINER = (-128, 127)  # int8
ACTIVATION_CONTAINER = (0, 255)  # uint8


class _WeightFakeQuant(nn.Module):
    """Parametrization exported as per-channel QuantizeLinear/DequantizeLinear (axis 0)."""

    def __init__(self, scales: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scales", scales.float().contiguous())
        self.register_buffer("zero_points", torch.zeros(scales.numel(), dtype=torch.int32))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_channel_affine(weight, self.scales, self.zero_points, 0, *WEIGHT_CONTAINER)


class _InputFakeQuant(nn.Module):
    """Clip to the integer range the quantizer allows, then QuantizeLinear/DequantizeLinear."""

    def __init__(self, scale: float, zero_point: int, quant_min: int, quant_max: int) -> None:
        super().__init__()
        if not ACTIVATION_CONTAINER[0] <= quant_min <= zero_point <= quant_max <= ACTIVATION_CONTAINER[1]:
            raise ValueError(f"input quantizer range [{quant_min}, {quant_max}] with zero point {zero_point} "
                             f"does not fit the uint8 container {list(ACTIVATION_CONTAINER)}")
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("zero_point", torch.tensor(zero_point, dtype=torch.int32))
        self.low, self.high = (quant_min - zero_point) * scale, (quant_max - zero_point) * scale
        self.narrowed = (quant_min, quant_max) != ACTIVATION_CONTAINER

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.narrowed:
            inputs = inputs.clamp(self.low, self.high)
        return torch.fake_quantize_per_tensor_affine(inputs, self.scale, self.zero_point, *ACTIVATION_CONTAINER)


def _quantize_input(layer: nn.Module, args: tuple) -> tuple:
    return (layer.input_fake_quant(args[0]), *args[1:])


def _sliced_layer(layer: nn.Module, grid: LayerGrid, bias: torch.Tensor | None, rows, cols) -> nn.Module:
    """A plain Conv2d/Linear holding only the kept rows and columns of the effective weight
    (``grid`` and ``bias`` as they ship: a BatchNorm folded in)."""
    weight = grid.weight if rows is None else grid.weight[rows]
    weight = weight if cols is None else weight[:, cols]
    bias = bias if bias is None or rows is None else bias[rows]
    if isinstance(layer, nn.Conv2d):
        depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
        groups = weight.shape[0] if depthwise else layer.groups  # a sliced depthwise conv keeps one group per channel
        new = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], layer.kernel_size, layer.stride,
                        layer.padding, layer.dilation, groups, bias is not None, layer.padding_mode)
    else:
        new = nn.Linear(weight.shape[1], weight.shape[0], bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    if grid.weight_bits < FLOAT_BITS:
        scales = grid.scales if rows is None else grid.scales[rows]
        parametrize.register_parametrization(new, "weight", _WeightFakeQuant(scales))
    return new


def _detached_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose parametrized modules own their classes. A deep copy shares the
    dynamically made ``Parametrized*`` class with the original, and removing a
    parametrization deletes its property from that class, which would break the original."""
    copied = copy.deepcopy(model)
    for module in copied.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
    return copied


def export_model(model: nn.Module, policy: Policy, specs: Sequence[LayerSpec]) -> nn.Module:
    """The export copy of a compressed model (``model`` itself is left as it is)."""
    policy.check_matches([spec.name for spec in specs])
    layers = {spec.name: compressible_layer(model, spec.name) for spec in specs}
    grids = {name: layer_grid(layer) for name, layer in layers.items()}
    shipped = fold_norms(model, grids, layers)
    slices = channel_slices(specs, policy, {name: grid.kept_rows() for name, grid in grids.items()}, shipped.unfolded)
    inputs = {name: layer.input_quantizer.quant_params() for name, layer in layers.items()
              if getattr(layer, "input_quantizer", None) is not None}
    copied = strip_compression(_detached_copy(model).cpu().eval())
    replace_with_identity(copied, shipped.folded.values())
    for name, layer in layers.items():
        new = _sliced_layer(layer, shipped.grids[name], shipped.biases[name], *slices[name])
        if name in inputs:
            new.input_fake_quant = _InputFakeQuant(*inputs[name])
            new.register_forward_pre_hook(_quantize_input)
        parent, _, child = name.rpartition(".")
        setattr(copied.get_submodule(parent) if parent else copied, child, new)
    for module in copied.modules():  # a model read by load_compressed carries its grids
        if hasattr(module, "weight_grid"):
            del module.weight_grid
    return copied


def export_onnx(model: nn.Module, policy: Policy, specs: Sequence[LayerSpec], path,
                example_input: torch.Tensor) -> dict:
    """Write the ONNX graph of ``model`` (compressed by apply_policy or read by
    load_compressed) to ``path``, batch dimension dynamic; returns its op counts."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exported = export_model(model, policy, specs)
    with torch.no_grad():
        try:
            exported(example_input.cpu())
        except RuntimeError as err:
            raise ValueError(f"the export copy of {type(model).__name__} does not run once its pruned channels are "
                             f"cut ({err}); an operation reads a tensor whose channels evo did not slice with it: "
                             "export structure='unstructured'") from err
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated, but it is the one that writes fake quant as Q/DQ
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(exported, (example_input.cpu(),), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    graph = onnx.load(str(path)).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {"path": str(path), "ops": dict(sorted(counts.items(), key=operator.itemgetter(0)))}
