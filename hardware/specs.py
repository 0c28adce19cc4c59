"""Layer specs: the shape facts every cost model needs, measured once per model.

A ``LayerSpec`` describes one prunable layer (``nn.Conv2d`` or ``nn.Linear``) as seen in a
forward pass. Costs are pure functions of specs and a policy, so they run anywhere
(the driver, a laptop) without torch. ``hardware.profiler`` fills specs from a torch model.

Channel-structured pruning needs the wiring between layers:

* ``producer`` names the layer whose output channels are this layer's input channels
  (``None`` for the first layer, which reads the image). When the input is a flattened
  feature map, each producer channel feeds ``input_channel_multiplier`` inputs
  (e.g. 16 for LeNet-5's fc1, which reads 50 channels of 4x4).
* ``tie_group`` is shared by layers whose outputs are summed by a residual add; they must
  keep the same channels, so the group's *leader* (its first layer in model order) sets
  the keep ratio for all of them.
* ``prunable_outputs`` is False for the classifier: its outputs are the classes.

``calls`` counts how often one inference runs the layer (a layer reused in ``forward``,
always on inputs of the same shape): its weights are stored once, but every call computes,
so MACs and activations are counted ``calls`` times.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

LAYER_KINDS = ("conv", "linear")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    kind: str  # "conv" or "linear"
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    groups: int = 1
    input_hw: tuple[int, int] = (1, 1)
    output_hw: tuple[int, int] = (1, 1)
    has_bias: bool = False
    norm_channels: int = 0  # channels of a BatchNorm right after this layer (0 if none)
    producer: str | None = None
    input_channel_multiplier: int = 1
    tie_group: str | None = None
    prunable_outputs: bool = True
    calls: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer {self.name!r}: kind={self.kind!r}; valid choices: {list(LAYER_KINDS)}")
        for what in ("in_channels", "out_channels", "groups", "input_channel_multiplier", "calls"):
            value = getattr(self, what)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"layer {self.name!r}: {what}={value!r} must be a positive integer")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"layer {self.name!r}: groups={self.groups} must divide in/out channels")
        object.__setattr__(self, "kernel", tuple(int(k) for k in self.kernel))
        object.__setattr__(self, "stride", tuple(int(k) for k in self.stride))
        object.__setattr__(self, "input_hw", tuple(int(k) for k in self.input_hw))
        object.__setattr__(self, "output_hw", tuple(int(k) for k in self.output_hw))

    # -- derived counts ---------------------------------------------------------------
    @property
    def weights(self) -> int:
        """N_l = C_out * (C_in / g) * k_h * k_w."""
        kh, kw = self.kernel
        return self.out_channels * (self.in_channels // self.groups) * kh * kw

    @property
    def is_depthwise(self) -> bool:
        """One input channel per output channel (groups == in == out > 1): its outputs follow
        its producer's kept channels under channel pruning."""
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels

    @property
    def output_positions(self) -> int:
        """Output pixels computed per inference, over all ``calls``."""
        return self.calls * self.output_hw[0] * self.output_hw[1]

    @property
    def macs(self) -> int:
        """M_l = H_out * W_out * N_l (Linear: N_l)."""
        return self.output_positions * self.weights

    @property
    def input_activations(self) -> int:
        return self.calls * self.in_channels * self.input_hw[0] * self.input_hw[1]

    @property
    def output_activations(self) -> int:
        return self.out_channels * self.output_positions

    def to_dict(self) -> dict:
        data = asdict(self)
        data["kernel"] = list(self.kernel)
        data["stride"] = list(self.stride)
        data["input_hw"] = list(self.input_hw)
        data["output_hw"] = list(self.output_hw)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "LayerSpec":
        data = dict(data)
        for key in ("kernel", "stride", "input_hw", "output_hw"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def layer_names(specs: Sequence[LayerSpec]) -> list[str]:
    return [s.name for s in specs]


def tie_leaders(specs: Sequence[LayerSpec]) -> dict[str, str]:
    """Map every layer name to the name of the layer that sets its keep ratio."""
    leader_of_group: dict[str, str] = {}
    leaders: dict[str, str] = {}
    for spec in specs:
        if spec.tie_group is None:
            leaders[spec.name] = spec.name
        else:
            leaders[spec.name] = leader_of_group.setdefault(spec.tie_group, spec.name)
    return leaders


def keep_ratio_setters(specs: Sequence[LayerSpec]) -> set[str]:
    """The layers whose own keep ratio channel pruning applies (``hardware.cost``,
    ``trainables.prune``): each tie group's leader, unless the group holds a layer whose outputs
    may not be pruned (the classifier), and unless every layer of the group is a depthwise conv
    (which keeps its producer's channels). Every other layer's keep ratio is never read."""
    leaders = tie_leaders(specs)
    frozen = {leaders[spec.name] for spec in specs if not spec.prunable_outputs}
    return {leaders[spec.name] for spec in specs if leaders[spec.name] not in frozen and not spec.is_depthwise}


def specs_to_json(specs: Iterable[LayerSpec]) -> str:
    return json.dumps([s.to_dict() for s in specs])


def specs_from_json(text: str) -> list[LayerSpec]:
    return [LayerSpec.from_dict(d) for d in json.loads(text)]
