"""Profile a torch model into LayerSpecs (the only torch code in hardware/, imported lazily).

Shapes come from forward hooks on one pass over zeros; the wiring between layers that
channel pruning needs (producer, tie groups, flatten multipliers, which outputs are the
classes) comes from tracing the graph (``hardware.wiring``), so any traceable model works
without a hand-written table.

A layer called more than once per inference (a reused block) is priced for every call
(``LayerSpec.calls``: MACs and activations times the calls, weights once); calls on inputs
of different shapes cannot be one spec and raise ValueError.
"""

from __future__ import annotations

from .specs import LayerSpec
from .wiring import trace_wiring


def profile_model(model, input_shape: tuple[int, ...]) -> list[LayerSpec]:
    """Run one forward pass on zeros of shape (1, *input_shape) and return the specs of every
    Conv2d / Linear layer in execution order (first call)."""
    records, order = _record_layers(model, input_shape)
    if not records:
        raise ValueError(f"model {type(model).__name__} runs no Conv2d or Linear layer on input {tuple(input_shape)}; "
                         "evo compresses those layers only")
    norm_after = _norms_after(order, records)
    wiring = trace_wiring(model, input_shape)
    specs = []
    for rec in records.values():
        if rec["name"] not in wiring:
            raise ValueError(f"layer {rec['name']!r} ran in forward but is not in the traced graph of "
                             f"{type(model).__name__}; it must be called as a module (self.{rec['name']}(x))")
        specs.append(LayerSpec(norm_channels=norm_after.get(rec["name"], 0), **rec, **wiring[rec["name"]]))
    return specs


def _record_layers(model, input_shape) -> tuple[dict[str, dict], list]:
    """Shape facts of every Conv2d / Linear (first call, ``calls`` counted) and the order of
    every leaf module's calls."""
    import torch
    from torch import nn

    records: dict[str, dict] = {}
    order: list = []

    def hook(name):
        def fn(module, inputs, output):
            order.append((name, module))
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                return
            rec = _layer_record(name, module, tuple(inputs[0].shape), tuple(output.shape))
            if name not in records:
                records[name] = {**rec, "calls": 1}
                return
            first = records[name]
            if {k: v for k, v in first.items() if k != "calls"} != rec:
                raise ValueError(f"layer {name!r} is called twice on inputs of different shapes "
                                 f"({first['input_hw']} and {rec['input_hw']}); evo prices one shape per layer")
            first["calls"] += 1

        return fn

    hooks = [module.register_forward_hook(hook(name))
             for name, module in model.named_modules() if len(list(module.children())) == 0]
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters()), torch.zeros(0)).device
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return records, order


def _layer_record(name, module, input_shape, output_shape) -> dict:
    from torch import nn

    rec = {"name": name, "has_bias": module.bias is not None}
    if isinstance(module, nn.Conv2d):
        rec.update(kind="conv", in_channels=module.in_channels, out_channels=module.out_channels,
                   kernel=tuple(module.kernel_size), stride=tuple(module.stride), groups=module.groups,
                   input_hw=tuple(input_shape[-2:]), output_hw=tuple(output_shape[-2:]))
    else:
        rec.update(kind="linear", in_channels=module.in_features, out_channels=module.out_features)
    return rec


def _norms_after(order: list, records: dict[str, dict]) -> dict[str, int]:
    """A BatchNorm executed right after a layer, on its channels, belongs to it (it stays
    float and is counted in the honest size)."""
    from torch import nn

    norm_after: dict[str, int] = {}
    for (name, module), (_, following) in zip(order, order[1:]):
        if name in records and isinstance(following, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if following.num_features == records[name]["out_channels"]:
                norm_after[name] = following.num_features
    return norm_after
