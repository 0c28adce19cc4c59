"""Each layer's sensitivity, measured once per run on the float base model (the tables of
``evo.core.sensitivity.Sensitivity``): the Fisher-weighted distortion of every choice, a
second-order estimate of the loss increase when that layer alone is compressed.

For a weight choice (pruning p, weight bits w) the estimate is 1/2 sum_i F_i (W'_i - W_i)^2,
where W' is what ``trainables.quantize.WeightTransform`` makes of the weight (the real mask and
quantizer, MSE-initialised scales included) and F is the diagonal empirical Fisher of the
weights, B * E[(batch-mean gradient)^2] over minibatches of B training images. For an
activation choice it is 1/2 E_n sum_j g_nj^2 (Q(x_nj) - x_nj)^2 over the layer's inputs x on
the same images, g their per-image loss gradients and Q the input quantizer at its
MSE-searched range. Under channel pruning a tie group's leader carries the distortion of
every member's removed channels. No forward pass per choice: one backward pass per minibatch.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hardware.policy import FLOAT_BITS, LayerPolicy, Policy
from hardware.specs import LayerSpec

from .compress import compressible_layer
from .prune import channel_masks, unstructured_mask
from .quantize import InputQuantizer, WeightTransform
from .scale_search import mse_input_range


def _fisher(model: nn.Module, layers: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, batch: int):
    """Diagonal weight Fisher per layer, and each layer's inputs with their per-image squared
    loss gradients (a list per call of the layer)."""
    weight_fisher = {name: torch.zeros_like(layer.weight) for name, layer in layers.items()}
    inputs: dict[str, list] = {name: [] for name in layers}

    def capture(name):
        def hook(module, args):
            seen = args[0] if args[0].requires_grad else args[0].detach().requires_grad_(True)
            seen.retain_grad()
            inputs[name].append(seen)
            return (seen, *args[1:])
        return hook

    handles = [layer.register_forward_pre_hook(capture(name)) for name, layer in layers.items()]
    captured = {name: [] for name in layers}
    batches = 0
    # a user's frozen layer (requires_grad False) still has a Fisher: measure it, then restore the flag
    frozen = [layer.weight for layer in layers.values() if not layer.weight.requires_grad]
    for weight in frozen:
        weight.requires_grad_(True)
    try:
        for start in range(0, len(y), batch):
            xb, yb = x[start:start + batch], y[start:start + batch]
            model.zero_grad(set_to_none=True)
            for seen in inputs.values():
                seen.clear()
            loss = F.cross_entropy(model(xb), yb, reduction="sum")  # per-image gradients for the inputs
            loss.backward()
            for name, layer in layers.items():
                if layer.weight.grad is None:
                    raise ValueError(f"layer {name!r}: its weight got no gradient from the loss (is its output "
                                     "detached, or unused by forward?)")
                weight_fisher[name] += layer.weight.grad.square() / len(yb)  # (sum of B gradients)^2 / B
                captured[name] += [(seen.detach(), seen.grad.square()) for seen in inputs[name]]
            batches += 1
    finally:
        for handle in handles:
            handle.remove()
        for weight in frozen:
            weight.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    return {name: value / batches for name, value in weight_fisher.items()}, captured


def measure_sensitivity(model: nn.Module, specs: list[LayerSpec], space, x: torch.Tensor, y: torch.Tensor, *,
                        batch: int = 64, log: Callable[[str], None] = lambda _: None) -> dict:
    """``{"weight": [[[...]]], "activation": [[...]]}`` over ``space.layer_tables`` (plain floats,
    see the module note) on the training images ``x``, labels ``y``."""
    started = time.perf_counter()
    names = list(space.layer_names)
    if names != [spec.name for spec in specs]:
        raise ValueError(f"the space's layers {names} are not the specs' {[spec.name for spec in specs]}")
    if len(y) == 0:
        raise ValueError("sensitivity needs at least one training image")
    model = model.eval()
    layers = {name: compressible_layer(model, name) for name in names}
    fisher, captured = _fisher(model, layers, x, y, batch)
    weights = {name: layer.weight.detach() for name, layer in layers.items()}
    images = len(y)

    def weight_distortion(index: int, prune: float, bits: int) -> float:
        name = names[index]
        if space.structure == "unstructured":
            masks = {name: unstructured_mask(weights[name], prune) if prune > 0 else None}
        else:  # the leader's keep ratio masks its whole tie group
            layer_policy = lambda n: LayerPolicy(weight_bits=FLOAT_BITS, activation_bits=FLOAT_BITS,  # noqa: E731
                                                 keep_ratio=prune if n == name else 1.0)
            policy = Policy(tuple((n, layer_policy(n)) for n in names), structure="channel")
            masks = {n: m for n, m in channel_masks(layers, policy, specs).items() if not bool(m.all())}
        total = 0.0
        for other in set(masks) | {name}:
            layer_bits = bits if other == name else FLOAT_BITS
            if masks.get(other) is None and layer_bits == FLOAT_BITS:
                continue
            with torch.no_grad():
                compressed = WeightTransform(weights[other], masks.get(other), layer_bits)(weights[other])
                total += 0.5 * float((fisher[other] * (compressed - weights[other]).square()).sum())
        return total

    def activation_distortion(index: int, bits: int) -> float:
        total = 0.0
        for seen, squared_grad in captured[names[index]]:
            quantizer = InputQuantizer(bits, *mse_input_range(seen, bits), device=seen.device)
            with torch.no_grad():
                total += 0.5 * float((squared_grad * (quantizer(seen) - seen).square()).sum())
        return total / images

    weight, activation = [], []
    for index in range(len(names)):
        prune, wbits, abits = space.layer_tables(index)
        weight.append([[weight_distortion(index, p, w) for w in wbits] for p in prune])
        activation.append([activation_distortion(index, a) for a in abits])
    entries = sum(len(rows) * len(rows[0]) for rows in weight) + sum(map(len, activation))
    log(f"sensitivity: {entries} per-layer choices priced by Fisher-weighted distortion on {images} training "
        f"images in {time.perf_counter() - started:.1f} s")
    return {"weight": weight, "activation": activation}
