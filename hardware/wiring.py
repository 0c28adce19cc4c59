"""Channel wiring of any model, read off its graph with ``torch.fx.symbolic_trace``.

Channel pruning needs, per Conv2d / Linear layer, whose output channels it reads
(``producer``), how many inputs each of those channels feeds (``input_channel_multiplier``,
e.g. H*W after a flatten) and which layers must keep the same channels (``tie_group``:
outputs summed by a residual add, multiplied together, or concatenated for one consumer).
A per-model table goes stale and a user's model has none, so the graph is traced instead.

Every tensor in the graph carries a *stream*: the set of layers whose output channels are
its channels (joined with a small union-find), plus a multiplier. Channel-preserving ops
pass the stream on; an add / mul / concatenation joins its operands' streams; a layer
starts a new stream. A stream's *leader* is its first layer in execution order: consumers
name it as producer and its keep ratio holds for the group (``specs.tie_leaders``). Layers
whose outputs reach the model output, or are summed with the model input, keep all their
channels (``prunable_outputs=False``).

Anything else raises ValueError naming the node and the operation: an op whose channel
mapping is unknown, a concatenation of unequal widths, a depthwise conv whose outputs are
tied to other layers (its channels follow its producer), a Linear on a rank > 2 tensor.

torch is imported lazily, so ``hardware`` stays importable without it.
"""

from __future__ import annotations

import math
import operator

INPUT = "<model input>"
# call_function / call_method names that keep the channel mapping of their first argument
PASS_THROUGH = frozenset({
    "relu", "relu_", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh",
    "leaky_relu", "elu", "selu", "mish", "softplus", "dropout", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "contiguous", "clone", "clamp", "clamp_", "softmax", "log_softmax", "neg", "abs",
    "float", "to", "detach", "pad", "interpolate", "upsample",
})
JOINING = frozenset({"add", "add_", "iadd", "sub", "sub_", "isub", "mul", "mul_", "imul", "truediv", "div"})
CONCATENATING = frozenset({"cat", "concat", "concatenate"})
RESHAPING = frozenset({"flatten", "view", "reshape", "mean", "sum", "amax", "squeeze", "unsqueeze"})
PASS_THROUGH_MODULES = (
    "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "ReLU", "ReLU6", "GELU", "SiLU", "Sigmoid", "Tanh",
    "Hardswish", "Hardsigmoid", "Hardtanh", "LeakyReLU", "ELU", "SELU", "Mish", "Softplus", "PReLU", "Dropout",
    "Dropout2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Identity", "Softmax",
    "LogSoftmax", "Upsample", "ZeroPad2d",
)


def trace_wiring(model, input_shape: tuple[int, ...]) -> dict[str, dict]:
    """{layer name: {producer, input_channel_multiplier, tie_group, prunable_outputs}} for
    every Conv2d / Linear the traced graph calls, in execution order (see module doc)."""
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    name = type(model).__name__
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception as err:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise ValueError(f"cannot trace model {name} with torch.fx.symbolic_trace ({type(err).__name__}: {err}); "
                         "evo reads the layer ties from the traced graph, so forward must be traceable "
                         "(no Python control flow on tensor values)") from err
    was_training = model.training
    model.eval()  # ShapeProp runs the graph: BatchNorm must not update its running statistics
    try:
        with torch.no_grad():
            device = next(iter(model.parameters()), torch.zeros(0)).device
            ShapeProp(graph_module).propagate(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
    walker = _GraphWalker(name, dict(graph_module.named_modules()))
    for node in graph_module.graph.nodes:
        walker.visit(node)
    return walker.wiring()


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    shape = getattr(meta, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _op_name(node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", repr(target)).strip("_")


class _GraphWalker:
    """Walks the fx graph once, node by node, keeping each tensor's (stream, multiplier)."""

    def __init__(self, model_name: str, modules: dict) -> None:
        self.model_name, self.modules = model_name, modules
        self.values: dict = {}  # fx node -> (stream key, multiplier); absent for non-tensors
        self.parent: dict[str, str] = {INPUT: INPUT}
        self.inputs: dict[str, tuple[str, int]] = {}  # layer -> the stream it reads (first call)
        self.depthwise: set[str] = set()
        self.frozen: list[str] = [INPUT]  # streams whose channels must all stay
        self.order: list[str] = []

    # -- union-find over stream keys ---------------------------------------------------------
    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(b)] = self.find(a)

    def fail(self, node, why: str) -> ValueError:
        return ValueError(f"model {self.model_name}: cannot price node {node.name!r} (operation {_op_name(node)!r}, "
                          f"{node.op}): {why}")

    # -- node dispatch ----------------------------------------------------------------------
    def visit(self, node) -> None:
        if node.op == "output":
            for arg in _tensor_nodes(node.args, self.values):
                self.frozen.append(self.values[arg][0])
            return
        if node.op == "placeholder":
            self.values[node] = (INPUT, 1)
            return
        if node.op == "get_attr" or _shape(node) is None:
            return  # a constant (joins nothing) or a non-tensor (a size, a shape)
        value = self._module(node) if node.op == "call_module" else self._function(node)
        if value is not None:
            self.values[node] = value

    def _module(self, node):
        module = self.modules[node.target]
        kind = type(module).__name__
        if kind in ("Conv2d", "Linear"):
            return self._layer(node, module)
        if kind in PASS_THROUGH_MODULES:
            return self._first_input(node)
        if kind == "Flatten":
            return self._reshape(node)
        raise self.fail(node, f"module {node.target!r} is a {kind}, whose channel mapping evo does not know; "
                        f"known: Conv2d, Linear, Flatten, {', '.join(PASS_THROUGH_MODULES)}")

    def _function(self, node):
        op = _op_name(node)
        if node.target is operator.getitem or op == "getitem":
            raise self.fail(node, "indexing or slicing a tensor changes its channels in ways evo cannot price")
        if op in PASS_THROUGH:
            return self._first_input(node)
        if op in JOINING:
            return self._join(node, _tensor_nodes(node.args, self.values))
        if op in CONCATENATING:
            return self._concatenate(node)
        if op in RESHAPING:
            return self._reshape(node)
        raise self.fail(node, "unknown channel mapping; supported: element-wise ops and pooling, add/mul, "
                        "cat, flatten/view/reshape/mean, Conv2d, Linear")

    def _first_input(self, node):
        tensors = _tensor_nodes(node.args[:1], self.values)
        return self.values[tensors[0]] if tensors else None

    def _layer(self, node, module) -> tuple[str, int]:
        name = node.target
        tensors = _tensor_nodes(node.args[:1], self.values)
        if not tensors:
            raise self.fail(node, f"layer {name!r} reads no traced tensor")
        stream, multiplier = self.values[tensors[0]]
        rank = len(_shape(tensors[0]))
        if type(module).__name__ == "Linear" and rank > 2:
            raise self.fail(node, f"Linear {name!r} reads a rank-{rank} tensor: its features are not the channels; "
                            "flatten first")
        if name in self.inputs:  # a second call: both inputs feed the same weights, so they are tied
            first_stream, first_multiplier = self.inputs[name]
            if first_multiplier != multiplier:
                raise self.fail(node, f"layer {name!r} is called twice on differently flattened inputs")
            self.join(first_stream, stream)
        else:
            self.inputs[name] = (stream, multiplier)
            self.parent[name] = name
            self.order.append(name)
            groups = getattr(module, "groups", 1)
            if groups > 1 and groups == module.in_channels == module.out_channels:
                self.depthwise.add(name)
        return name, 1

    def _join(self, node, tensors: list) -> tuple[str, int] | None:
        if not tensors:
            return None
        stream, multiplier = self.values[tensors[0]]
        for other in tensors[1:]:
            other_stream, other_multiplier = self.values[other]
            if other_multiplier != multiplier:
                raise self.fail(node, f"operands of multipliers {multiplier} and {other_multiplier} "
                                "(one flattened differently from the other)")
            self.join(stream, other_stream)
        return stream, multiplier

    def _concatenate(self, node) -> tuple[str, int]:
        pieces = _tensor_nodes(node.args[:1], self.values)
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        rank = len(_shape(node))
        if dim % rank != 1:  # along batch or space: the channels stay those of (tied) pieces
            return self._join(node, pieces)
        widths = [_shape(p)[1] // self.values[p][1] for p in pieces]
        if len(set(widths)) != 1:
            raise self.fail(node, f"a concatenation of streams of {widths} channels: its channel mapping is not "
                            "one producer times a multiplier (evo ties the pieces, so they need equal widths)")
        stream = self.values[pieces[0]][0]
        for piece in pieces[1:]:
            self.join(stream, self.values[piece][0])
        return stream, sum(self.values[p][1] for p in pieces)

    def _reshape(self, node) -> tuple[str, int]:
        source = _tensor_nodes(node.args[:1], self.values)[0]
        stream, multiplier = self.values[source]
        before, after = _shape(source), _shape(node)
        if len(after) >= 2 and after[:2] == before[:2]:
            return stream, multiplier
        if len(after) == 2 and after[0] == before[0] and after[1] == math.prod(before[1:]):
            return stream, multiplier * math.prod(before[2:])
        raise self.fail(node, f"reshapes {list(before)} to {list(after)}: only flattening everything after the "
                        "channels, or keeping batch and channels, is priced")

    # -- result ------------------------------------------------------------------------------
    def wiring(self) -> dict[str, dict]:
        members: dict[str, list[str]] = {}
        for name in self.order:
            members.setdefault(self.find(name), []).append(name)
        frozen = {self.find(key) for key in self.frozen}
        wiring = {}
        for name in self.order:
            group = members[self.find(name)]
            if name in self.depthwise and len(group) > 1:
                raise ValueError(f"model {self.model_name}: depthwise conv {name!r} has its output channels tied to "
                                 f"{[n for n in group if n != name]} (an add, mul or concatenation); a depthwise "
                                 "conv's channels follow its producer, so this tie cannot be priced")
            stream, multiplier = self.inputs[name]
            readers = members.get(self.find(stream))
            wiring[name] = {
                "producer": readers[0] if readers else None,
                "input_channel_multiplier": multiplier if readers else 1,  # the image: every input stays
                "tie_group": group[0] if len(group) > 1 else None,
                "prunable_outputs": self.find(name) not in frozen,
            }
        return wiring


def _tensor_nodes(args, values: dict) -> list:
    """The fx nodes holding traced tensors among (possibly nested) arguments, in order."""
    from torch.fx.node import map_arg

    found: list = []
    map_arg(args, lambda n: found.append(n) if n in values else None)
    return found
