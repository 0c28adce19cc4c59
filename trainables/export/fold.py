"""BatchNorm folded into the layer it reads from, as the shipped model stores it.

A BatchNorm in eval mode is a per-channel affine map, y = f * z + t with
f = gamma / sqrt(running_var + eps) and t = beta - running_mean * f. When it reads a
Conv2d/Linear's output and nothing else reads that output, it folds into the layer: each
output channel's weight scale (or its float weights) is multiplied by f, and the bias
becomes f * b + t. Integer codes do not change, so folding costs no accuracy; what is left
of the norm is one float per channel (the new bias, when the layer had none), which is what
``hardware.size.honest_size_bits`` counts.

Which norm folds into which layer is read off the graph (``torch.fx``), not guessed from
the order modules run in: a norm folds only when its one input is the layer's output, the
layer's output has no other reader, and each runs once per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import torch
from torch import fx, nn

from ..compress import NORMS
from .grid import LayerGrid, dequantize, integer_codes


@dataclass(frozen=True)
class Fold:
    """The per-channel affine map of one norm: y = scale * z + shift (float32 vectors)."""

    norm: str  # qualified name of the BatchNorm module
    scale: torch.Tensor
    shift: torch.Tensor


def norm_readers(model: nn.Module, layer_names: Iterable[str]) -> dict[str, tuple[str, bool]]:
    """Layer name -> (qualified name of a BatchNorm that reads the layer's output, whether it
    folds into the layer; see the module note)."""
    layer_names = set(layer_names)
    graph = fx.symbolic_trace(model).graph
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    readers = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), NORMS):
            continue
        norm = model.get_submodule(node.target)
        for source in node.all_input_nodes:
            if source.op != "call_module" or source.target not in layer_names:
                continue
            folds = (len(source.users) == 1 and node.all_input_nodes == [source] and calls[source.target] == 1
                     and calls[node.target] == 1 and norm.running_mean is not None
                     and norm.num_features == model.get_submodule(source.target).weight.shape[0])
            if source.target not in readers or folds:
                readers[source.target] = (node.target, folds)
    return readers


def norm_fold(model: nn.Module, norm_name: str) -> Fold:
    """The eval-mode affine map of ``norm_name`` (its masked weight and bias, if pruned)."""
    norm = model.get_submodule(norm_name)
    with torch.no_grad():
        scale = torch.rsqrt(norm.running_var.detach().cpu().double() + norm.eps)
        shift = -norm.running_mean.detach().cpu().double() * scale
        if norm.affine:
            gamma, beta = norm.weight.detach().cpu().double(), norm.bias.detach().cpu().double()
            scale, shift = scale * gamma, shift * gamma + beta
    return Fold(norm_name, scale.float(), shift.float())


def replace_with_identity(model: nn.Module, names: Iterable[str]) -> None:
    """Put ``nn.Identity()`` where each named module was (a folded norm)."""
    for name in names:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())


def fold_layer(grid: LayerGrid, bias: torch.Tensor | None, fold: Fold, name: str) -> tuple[LayerGrid, torch.Tensor]:
    """The layer's grid and bias with ``fold`` folded in. Integer codes stay as they are and
    each channel's scale is multiplied by f (a negative f gives a negative scale); a channel
    whose f is 0 outputs its shift alone, so its codes become 0 with scale 1. Float weights
    are multiplied by f. The bias is f * b + t (b = 0 for a layer without one)."""
    f = fold.scale
    if f.numel() != grid.weight.shape[0]:
        raise ValueError(f"layer {name!r}: BatchNorm {fold.norm!r} has {f.numel()} channels, the layer "
                         f"{grid.weight.shape[0]} outputs")
    new_bias = fold.shift + f * (0.0 if bias is None else bias.detach().cpu().float())
    rows = f.reshape(-1, *([1] * (grid.weight.dim() - 1)))
    if grid.scales is None:
        return replace(grid, weight=grid.weight * rows), new_bias
    codes = integer_codes(grid, name)
    dead = f == 0
    codes[dead] = 0
    scales = torch.where(dead, torch.ones_like(f), grid.scales * f)
    return replace(grid, weight=dequantize(codes, scales), scales=scales), new_bias


@dataclass(frozen=True)
class FoldedLayers:
    """The compressed layers as they ship: grids and biases with their norms folded in."""

    grids: dict[str, LayerGrid]
    biases: dict[str, torch.Tensor | None]
    folded: dict[str, str]  # layer name -> the norm folded into it (replaced by Identity on load)
    unfolded: frozenset[str]  # layers read by a norm that cannot fold (it stays a float module)


def fold_norms(model: nn.Module, grids: dict[str, LayerGrid], layers: dict[str, nn.Module]) -> FoldedLayers:
    """Every foldable norm of ``model`` folded into its layer; the other layers as they are."""
    readers = norm_readers(model, grids)
    biases = {name: None if layer.bias is None else layer.bias.detach().cpu().float() for name, layer in layers.items()}
    grids, folded = dict(grids), {}
    for name, (norm, folds) in readers.items():
        if folds:
            grids[name], biases[name] = fold_layer(grids[name], biases[name], norm_fold(model, norm), name)
            folded[name] = norm
    return FoldedLayers(grids, biases, folded, frozenset(name for name in readers if name not in folded))
