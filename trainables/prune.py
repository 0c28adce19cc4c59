"""Pruning masks, decided once from the current weights and fixed afterwards.

Two kinds, matching the two policy structures:

* unstructured: a per-layer magnitude mask keeping exactly ``round((1 - s) * N)`` weights,
  the count the cost models charge for (``hardware.cost.kept_weights``);
* channel: a mask over output channels keeping the ``round(r * C_out)`` (at least 1)
  channels of largest L2 norm. Layers whose outputs a residual add sums (a tie group)
  share one mask, decided on the group's summed channel norms, with the group leader's
  keep ratio (``hardware.specs.tie_leaders``).

Masks are float tensors on the weight's device so applying one is a single multiply.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from hardware.cost import kept_channels, kept_weights
from hardware.policy import Policy
from hardware.specs import LayerSpec, tie_leaders


def unstructured_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask of the weight's shape keeping exactly the round((1-s)*N) largest |w|
    (ties broken by torch.topk, so the count is exact even for repeated values)."""
    keep = kept_weights(weight.numel(), sparsity)
    flat_mask = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device)
    if keep > 0:
        kept = torch.topk(weight.detach().abs().flatten(), keep, sorted=False).indices
        flat_mask[kept] = 1.0
    return flat_mask.view_as(weight)


def channel_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output channel (dim 0) of a conv or linear weight."""
    return weight.detach().flatten(1).norm(dim=1)


def channel_mask_from_norms(norms: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """A 0/1 vector over output channels keeping the strongest round(r*C) (>= 1)."""
    keep = kept_channels(norms.numel(), keep_ratio)
    mask = torch.zeros_like(norms)
    mask[torch.topk(norms, keep, sorted=False).indices] = 1.0
    return mask


def channel_masks(
    layers: Mapping[str, nn.Module], policy: Policy, specs: Sequence[LayerSpec]
) -> dict[str, torch.Tensor]:
    """Output-channel masks (1-D, length C_out) for every layer of a channel policy.

    Layers of one tie group get the same mask object; a group containing a layer whose
    outputs may not be pruned (the classifier) keeps all its channels; a depthwise conv
    keeps its producer's channels (each of its outputs reads one input channel). These are
    the rules of ``hardware.cost``, so the counts here are the counts it charges."""
    leaders = tie_leaders(specs)
    members: dict[str, list[LayerSpec]] = {}
    for spec in specs:
        members.setdefault(leaders[spec.name], []).append(spec)
    masks: dict[str, torch.Tensor] = {}
    for spec in specs:  # model order, so a depthwise conv's producer is decided before it
        if spec.name in masks:
            continue
        if spec.is_depthwise and spec.producer is not None:
            masks[spec.name] = masks[spec.producer]
            continue
        group = members[leaders[spec.name]]
        widths = {layers[s.name].weight.shape[0] for s in group}
        if len(widths) != 1:
            names = [s.name for s in group]
            raise ValueError(f"tie group {names} joins layers of different output widths {sorted(widths)}")
        summed = sum(channel_norms(layers[s.name].weight) for s in group)
        keep_ratio = policy[leaders[spec.name]].keep_ratio if all(s.prunable_outputs for s in group) else 1.0
        shared = channel_mask_from_norms(summed, keep_ratio)
        masks.update({s.name: shared for s in group})
    return masks
