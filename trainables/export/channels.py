"""Which weight rows and columns a channel-pruned layer physically keeps.

A channel policy zeroes whole output channels (rows); the consumer's columns that read
them see exact zeros, so the export drops both. The columns follow the specs' wiring
(``hardware.specs``): the producer's kept channels, each feeding
``input_channel_multiplier`` consecutive inputs (a flattened C x H x W feature map is
channel-major). A BatchNorm reading a pruned layer is folded into it first (``fold``).
The layers of a residual tie group share one mask, so their rows are cut alike and the add
sums tensors of the same kept channels; a depthwise conv keeps its producer's channels and
shrinks its groups with them. Other grouped convs and norms that cannot fold would need the
groups or the norm sliced as well: not supported.
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import torch

from hardware.policy import Policy
from hardware.specs import LayerSpec


def check_channel_export(specs: Sequence[LayerSpec], policy: Policy, rows: Mapping[str, torch.Tensor],
                         unfolded: Collection[str] = ()) -> None:
    """ValueError naming the layer when a channel-pruned model is outside what slicing supports
    (``unfolded``: the layers read by a BatchNorm that could not be folded into them)."""
    if policy.structure != "channel":
        return
    for spec in specs:
        pruned = not bool(rows[spec.name].all())
        if spec.groups != 1 and not spec.is_depthwise and (pruned or (spec.producer and not bool(rows[spec.producer].all()))):
            raise ValueError(f"layer {spec.name!r} is a grouped conv (groups={spec.groups}, not depthwise): "
                             "channel-pruned export supports groups=1 and depthwise convs only")
        if spec.name in unfolded and pruned:
            raise ValueError(f"layer {spec.name!r} is read by a BatchNorm that cannot be folded into it (the layer "
                             "runs twice, or its output has other readers): channel-pruned export does not slice "
                             "norms; export structure='unstructured'")


def kept_columns(spec: LayerSpec, rows: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """Input-column indices of ``spec``'s weight that read kept channels (None: all)."""
    if spec.producer is None or spec.is_depthwise or bool(rows[spec.producer].all()):
        return None  # a depthwise weight has one input column per output channel
    channels = rows[spec.producer].nonzero().flatten()
    multiplier = spec.input_channel_multiplier
    return (channels[:, None] * multiplier + torch.arange(multiplier)).reshape(-1)


def channel_slices(specs: Sequence[LayerSpec], policy: Policy, rows: Mapping[str, torch.Tensor],
                   unfolded: Collection[str] = ()) -> dict:
    """Name -> (row indices or None, column indices or None); all None for unstructured."""
    check_channel_export(specs, policy, rows, unfolded)
    if policy.structure != "channel":
        return {spec.name: (None, None) for spec in specs}
    return {
        spec.name: (None if bool(rows[spec.name].all()) else rows[spec.name].nonzero().flatten(),
                    kept_columns(spec, rows))
        for spec in specs
    }
