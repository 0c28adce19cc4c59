"""Profile a torch model into LayerSpecs with forward hooks (the only torch code in hardware/).

The wiring between layers that channel-structured pruning needs (producer, residual tie
groups, flatten multipliers) cannot be read off a forward pass in general, so a model may
describe it with a method ``channel_wiring() -> {layer name: {key: value}}`` using the
LayerSpec field names ``producer``, ``input_channel_multiplier``, ``tie_group``,
``prunable_outputs``. Without it, the model is taken as a chain: each layer's producer is
the previous prunable layer, a flatten multiplier is inferred from the channel counts,
and the last layer's outputs (the classes) are not prunable.
"""

from __future__ import annotations

from .specs import LayerSpec


def profile_model(model, input_shape: tuple[int, int, int]) -> list[LayerSpec]:
    """Run one forward pass on zeros of shape (1, *input_shape) and return the specs of every
    Conv2d / Linear layer in execution order."""
    import torch
    from torch import nn

    records: list[dict] = []
    order: list[tuple[str, nn.Module]] = []
    hooks = []

    def hook(name):
        def fn(module, inputs, output):
            order.append((name, module))
            if isinstance(module, (nn.Conv2d, nn.Linear)) and not any(r["name"] == name for r in records):
                x = inputs[0]
                rec = {"name": name, "has_bias": module.bias is not None}
                if isinstance(module, nn.Conv2d):
                    rec.update(
                        kind="conv",
                        in_channels=module.in_channels,
                        out_channels=module.out_channels,
                        kernel=tuple(module.kernel_size),
                        stride=tuple(module.stride),
                        groups=module.groups,
                        input_hw=tuple(x.shape[-2:]),
                        output_hw=tuple(output.shape[-2:]),
                    )
                else:
                    rec.update(kind="linear", in_channels=module.in_features, out_channels=module.out_features)
                records.append(rec)

        return fn

    for name, module in model.named_modules():
        if len(list(module.children())) == 0:
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    # A BatchNorm executed right after a layer, on its channels, belongs to it.
    norm_after: dict[str, int] = {}
    for (name, module), (_, nxt) in zip(order, order[1:]):
        if isinstance(module, (nn.Conv2d, nn.Linear)) and isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if nxt.num_features == records_by_name(records)[name]["out_channels"]:
                norm_after[name] = nxt.num_features

    wiring = model.channel_wiring() if hasattr(model, "channel_wiring") else _chain_wiring(records)
    specs = []
    for rec in records:
        extra = dict(wiring.get(rec["name"], {}))
        unknown = set(extra) - {"producer", "input_channel_multiplier", "tie_group", "prunable_outputs"}
        if unknown:
            raise ValueError(f"channel_wiring for {rec['name']!r} has unknown keys {sorted(unknown)}")
        specs.append(LayerSpec(norm_channels=norm_after.get(rec["name"], 0), **rec, **extra))
    names = {s.name for s in specs}
    for s in specs:
        if s.producer is not None and s.producer not in names:
            raise ValueError(f"layer {s.name!r}: producer {s.producer!r} is not a prunable layer of the model")
    return specs


def records_by_name(records: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in records}


def _chain_wiring(records: list[dict]) -> dict[str, dict]:
    wiring: dict[str, dict] = {}
    previous = None
    for rec in records:
        entry: dict = {"producer": previous["name"] if previous else None}
        if previous is not None:
            produced = previous["out_channels"]
            if rec["in_channels"] != produced:
                if rec["in_channels"] % produced:
                    raise ValueError(
                        f"cannot infer channel wiring: {rec['name']!r} reads {rec['in_channels']} inputs "
                        f"but {previous['name']!r} makes {produced} channels; give the model a channel_wiring()"
                    )
                entry["input_channel_multiplier"] = rec["in_channels"] // produced
        wiring[rec["name"]] = entry
        previous = rec
    if records:
        wiring[records[-1]["name"]]["prunable_outputs"] = False
    return wiring
