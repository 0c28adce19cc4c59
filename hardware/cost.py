"""Price a compression policy on a model's layer specs: the entry point of ``hardware``.

``effective_layers`` turns (specs, policy) into what the hardware actually holds and
computes per layer (kept weights, kept channels, executed MACs); ``bops``, ``size``,
``energy`` and ``latency`` price those; ``layer_costs`` / ``total_costs`` collect the
numbers as plain JSON-ready dicts. ``total_costs`` runs thousands of times during budget
repair, so it avoids YAML, copies and heavy objects, and caches the reference points.

Pruning counts (shared with the transforms that apply a policy to a model):
  unstructured: nnz = round((1 - s) * N)                      (``kept_weights``)
  channel:      C'_out = max(1, round(r * C_out))             (``kept_channels``)
                with r the keep ratio of the layer's tie leader; C'_in = the producer's
                C'_out * input_channel_multiplier (the first layer keeps all inputs);
                nnz = C'_out * (C'_in / g) * k_h * k_w.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

from .bops import layer_bops, layer_bops_dense
from .energy import layer_energy_pj
from .latency import layer_latency_s
from .policy import Policy
from .size import comparable_size_bits, honest_size_bits
from .specs import LayerSpec, tie_leaders
from .targets import Target, as_target

COST_METRICS = ("bops", "size_bits", "size_bits_honest", "energy_pj", "latency_s")
REFERENCES = {"fp32": 32, "int8": 8}  # reference name -> uniform weight and activation bits
SUMMED = ("params", "macs", "nnz", "macs_effective", "bops", "bops_dense", "size_bits", "size_bits_honest",
          "energy_pj", "latency_s")  # the additive per-layer numbers
# Short names of the "x smaller than the reference" ratios: bops_vs_fp32, size_vs_int8, ...
RATIO_NAMES = {"bops": "bops", "size_bits": "size", "size_bits_honest": "size_honest",
               "energy_pj": "energy", "latency_s": "latency"}


@dataclass(frozen=True)
class EffectiveLayer:
    """What one layer holds and computes once its policy is applied."""

    name: str
    weight_bits: int
    activation_bits: int
    nnz: int  # kept (non-zero) weights
    dense_weights: int  # weight slots stored densely: N (unstructured) or nnz (channel)
    kept_out_channels: int
    kept_in_channels: int
    macs_effective: int  # multiplies a zero-skipping machine does: H*W*nnz
    macs_dense: int  # multiplies a dense machine does: H*W*dense_weights
    input_activations: int  # C'_in * H_in * W_in
    output_activations: int  # C'_out * H * W
    terms_per_output: int  # products summed into one output, (C'_in/g)*k_h*k_w
    has_bias: bool
    kept_norm_channels: int


def kept_weights(weights: int, sparsity: float) -> int:
    return round((1.0 - sparsity) * weights)


def kept_channels(channels: int, keep_ratio: float) -> int:
    return max(1, round(keep_ratio * channels))


def _kept_in_channels(spec: LayerSpec, kept_out: dict[str, int]) -> int:
    if spec.producer is None:
        return spec.in_channels
    if spec.producer not in kept_out:
        raise ValueError(
            f"layer {spec.name!r}: producer {spec.producer!r} is not a layer of these specs "
            f"(or, for a depthwise conv, comes after it); layers: {list(kept_out)}"
        )
    return kept_out[spec.producer] * spec.input_channel_multiplier


def _kept_out_channels(specs: Sequence[LayerSpec], policy: Policy) -> dict[str, int]:
    """C'_out per layer in model order. A tie group holding a layer whose outputs may not be
    pruned (the classifier) keeps every channel; a depthwise conv keeps its producer's."""
    leaders = tie_leaders(specs)
    frozen_leaders = {leaders[spec.name] for spec in specs if not spec.prunable_outputs}
    kept: dict[str, int] = {}
    for spec in specs:
        leader = leaders[spec.name]
        if leader in frozen_leaders:
            kept[spec.name] = spec.out_channels
        elif spec.is_depthwise:
            kept[spec.name] = _kept_in_channels(spec, kept)
        else:
            kept[spec.name] = kept_channels(spec.out_channels, policy[leader].keep_ratio)
    return kept


def _effective_layer(spec: LayerSpec, policy: Policy, kept_out: dict[str, int] | None) -> EffectiveLayer:
    layer_policy = policy[spec.name]
    kh, kw = spec.kernel
    if kept_out is None:  # unstructured: every channel stays, zeros sit inside the tensors
        out_channels, in_channels = spec.out_channels, spec.in_channels
        in_per_group = spec.in_channels // spec.groups
        nnz = kept_weights(spec.weights, layer_policy.sparsity)
        dense_weights = spec.weights
    else:
        out_channels, in_channels = kept_out[spec.name], _kept_in_channels(spec, kept_out)
        # Depthwise: one input per group. Other grouped convs lose inputs evenly per group.
        in_per_group = 1 if spec.is_depthwise else max(1, round(in_channels / spec.groups))
        nnz = dense_weights = out_channels * in_per_group * kh * kw
    positions = spec.output_positions
    return EffectiveLayer(
        name=spec.name,
        weight_bits=layer_policy.weight_bits,
        activation_bits=layer_policy.activation_bits,
        nnz=nnz,
        dense_weights=dense_weights,
        kept_out_channels=out_channels,
        kept_in_channels=in_channels,
        macs_effective=positions * nnz,
        macs_dense=positions * dense_weights,
        input_activations=spec.calls * in_channels * spec.input_hw[0] * spec.input_hw[1],
        output_activations=out_channels * positions,
        terms_per_output=in_per_group * kh * kw,
        has_bias=spec.has_bias,
        kept_norm_channels=spec.norm_channels * out_channels // spec.out_channels,
    )


def effective_layers(specs: Sequence[LayerSpec], policy: Policy) -> list[EffectiveLayer]:
    """Kept weights, channels and MACs per layer. ValueError if the policy does not fit the specs."""
    names = tuple(spec.name for spec in specs)
    if names != policy.names:  # the common case (same order) needs no further check
        policy.check_matches(names)
    kept_out = _kept_out_channels(specs, policy) if policy.structure == "channel" else None
    return [_effective_layer(spec, policy, kept_out) for spec in specs]


def _shape(spec: LayerSpec) -> str:
    if spec.kind == "linear":
        return f"{spec.out_channels}x{spec.in_channels}"
    return f"{spec.out_channels}x{spec.in_channels // spec.groups}x{spec.kernel[0]}x{spec.kernel[1]}"


def _layer_metrics(spec: LayerSpec, layer: EffectiveLayer, target: Target) -> dict:
    """The additive numbers of one layer (the keys of ``SUMMED``)."""
    return {
        "params": spec.weights,
        "macs": spec.macs,
        "nnz": layer.nnz,
        "macs_effective": layer.macs_effective,
        "bops": layer_bops(layer),
        "bops_dense": layer_bops_dense(layer),
        "size_bits": comparable_size_bits(layer),
        "size_bits_honest": honest_size_bits(layer),
        "energy_pj": layer_energy_pj(layer, target),
        "latency_s": layer_latency_s(layer, target),
    }


def _layer_row(spec: LayerSpec, layer: EffectiveLayer, target: Target) -> dict:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "shape": _shape(spec),
        "kept_out_channels": layer.kept_out_channels,
        "kept_in_channels": layer.kept_in_channels,
        "weight_bits": layer.weight_bits,
        "activation_bits": layer.activation_bits,
        **_layer_metrics(spec, layer, target),
    }


def layer_costs(specs: Sequence[LayerSpec], policy: Policy, target: Target | str) -> list[dict]:
    """One dict of shape facts and costs per layer, in model order."""
    target, specs = as_target(target), tuple(specs)
    layers = effective_layers(specs, policy)
    return [_layer_row(spec, layer, target) for spec, layer in zip(specs, layers)]


def _summed_costs(specs: Sequence[LayerSpec], policy: Policy, target: Target) -> dict:
    totals = dict.fromkeys(SUMMED, 0)
    for spec, layer in zip(specs, effective_layers(specs, policy)):
        for key, value in _layer_metrics(spec, layer, target).items():
            totals[key] += value
    return totals


def reference_policy(layer_names: Sequence[str], reference: str = "fp32") -> Policy:
    """The uniform dense policy of a reference point: float (fp32) or w8a8 (int8)."""
    if reference not in REFERENCES:
        raise ValueError(f"reference={reference!r} is not valid; valid choices: {list(REFERENCES)}")
    bits = REFERENCES[reference]
    return Policy.uniform(layer_names, weight_bits=bits, activation_bits=bits)


@functools.lru_cache(maxsize=256)
def _reference_sums(specs: tuple[LayerSpec, ...], target: Target, reference: str) -> dict:
    return _summed_costs(specs, reference_policy([s.name for s in specs], reference), target)


def _ratio(reference_value: float, value: float) -> float:
    return reference_value / value if value > 0 else float("inf")


def total_costs(specs: Sequence[LayerSpec], policy: Policy, target: Target | str) -> dict:
    """Model totals, the fp32 and int8 reference totals (``bops_fp32``, ``size_bits_int8``, ...)
    and how many times smaller than each reference the policy is (``bops_vs_fp32``, ...).
    A ratio is inf only when a cost is 0 (every weight of every layer pruned away)."""
    target, specs = as_target(target), tuple(specs)
    totals = _summed_costs(specs, policy, target)
    for reference in REFERENCES:
        sums = _reference_sums(specs, target, reference)
        for metric in COST_METRICS:
            totals[f"{metric}_{reference}"] = sums[metric]
            totals[f"{RATIO_NAMES[metric]}_vs_{reference}"] = _ratio(sums[metric], totals[metric])
    return totals


def reference_costs(specs: Sequence[LayerSpec], target: Target | str, reference: str = "fp32") -> dict:
    """``total_costs`` of the uniform dense float (``fp32``) or w8a8 (``int8``) policy."""
    specs = tuple(specs)
    return total_costs(specs, reference_policy([s.name for s in specs], reference), target)
