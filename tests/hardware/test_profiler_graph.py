"""Profiling models evo has never seen: shapes from hooks, ties and producers from torch.fx.

The models are defined here only; MACs are computed by hand in the comments. Each net is
also compressed in channel mode (trainables.compress) and fine-tuned one real step, and the
channels its masks keep must be the channels the cost model charges."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hardware.cost import effective_layers
from hardware.policy import LayerPolicy, Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy, compression_summary
from trainables.models import create_model
from trainables.train import fine_tune


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def conv_bn(cin, cout, k, **kw):
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False, **kw), nn.BatchNorm2d(cout))


class InvertedResidualNet(nn.Module):
    """MobileNetV2-style: stem, [expand 1x1 -> depthwise 3x3 (dilated) -> project 1x1] + stem,
    a stride-2 grouped conv, pool, classifier. Input 3x8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8, 3, padding=1)
        self.expand = conv_bn(8, 16, 1)
        self.depthwise = conv_bn(16, 16, 3, padding=2, dilation=2, groups=16)
        self.project = conv_bn(16, 8, 1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu6(self.stem(x))
        x = x + self.project(F.relu6(self.depthwise(F.relu6(self.expand(x)))))
        x = F.relu(self.down(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SharedLayerNet(nn.Module):
    """One conv applied twice (weights shared). Input 3x6x6."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        x = F.relu(self.shared(F.relu(self.shared(F.relu(self.conv1(x))))))
        return self.fc(x.view(x.size(0), -1))


class ConcatNet(nn.Module):
    """Two branches of equal width concatenated for one consumer. Input 1x6x6."""

    def __init__(self, width_b: int = 6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 6, 1)
        self.b = nn.Conv2d(4, width_b, 3, padding=1)
        self.c = nn.Conv2d(6 + width_b, 5, 1)
        self.fc = nn.Linear(5 * 6 * 6, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.c(F.relu(torch.cat([self.a(x), self.b(x)], dim=1))))
        return self.fc(x.flatten(1))


NETS = {  # model, input shape, {layer: (MACs, producer, multiplier, tie group, prunable outputs, calls)}
    "inverted_residual": (InvertedResidualNet, (3, 8, 8), {
        "stem": (64 * 8 * 3 * 9, None, 1, "stem", True, 1),           # 13,824
        "expand": (64 * 16 * 8, "stem", 1, None, True, 1),            # 8,192
        "depthwise": (64 * 16 * 9, "expand", 1, None, True, 1),       # H*W*C*k*k = 9,216
        "project": (64 * 8 * 16, "depthwise", 1, "stem", True, 1),    # 8,192
        "down": (16 * 8 * 4 * 9, "stem", 1, None, True, 1),           # 4x4 out, 8/2 inputs per group: 4,608
        "head": (8 * 10, "down", 1, None, False, 1),
    }),
    "shared": (SharedLayerNet, (3, 6, 6), {
        "conv1": (36 * 4 * 3 * 9, None, 1, "conv1", True, 1),         # 3,888
        "shared": (2 * 36 * 4 * 4 * 9, "conv1", 1, "conv1", True, 2),  # both calls: 10,368
        "fc": (144 * 10, "conv1", 36, None, False, 1),
    }),
    "concat": (ConcatNet, (1, 6, 6), {
        "stem": (36 * 4 * 9, None, 1, None, True, 1),                  # 1,296
        "a": (36 * 6 * 4, "stem", 1, "a", True, 1),                    # 864
        "b": (36 * 6 * 4 * 9, "stem", 1, "a", True, 1),                # 7,776
        "c": (36 * 5 * 12, "a", 2, None, True, 1),                     # 2,160: 2 x a's channels
        "fc": (180 * 10, "c", 36, None, False, 1),
    }),
}


def layer_name(name: str) -> str:  # conv_bn wraps the conv in a Sequential
    return f"{name}.0" if name in ("stem", "expand", "depthwise", "project") else name


@pytest.mark.parametrize("net", sorted(NETS))
def test_profile_finds_macs_ties_and_producers(net):
    model_class, shape, expected = NETS[net]
    specs = profile_model(model_class(), shape)
    rename = layer_name if net == "inverted_residual" else (lambda n: n)
    got = {s.name: (s.macs, s.producer, s.input_channel_multiplier, s.tie_group, s.prunable_outputs, s.calls)
           for s in specs}
    want = {rename(name): (macs, producer and rename(producer), mult, group and rename(group), prunable, calls)
            for name, (macs, producer, mult, group, prunable, calls) in expected.items()}
    assert got == want
    if net == "inverted_residual":  # BatchNorms stay float and belong to their conv
        assert {s.name: s.norm_channels for s in specs} == {"stem.0": 8, "expand.0": 16, "depthwise.0": 16,
                                                            "project.0": 8, "down": 0, "head": 0}


@pytest.mark.parametrize("net", sorted(NETS))
def test_channel_policy_applies_and_fine_tunes(net):
    model_class, shape, _ = NETS[net]
    torch.manual_seed(0)
    model = model_class()
    specs = profile_model(model, shape)
    ratios = (0.5, 0.75, 0.25)  # unequal, so a depthwise conv that kept its own ratio would show
    policy = Policy(tuple((s.name, LayerPolicy(keep_ratio=ratios[i % 3], weight_bits=8)) for i, s in enumerate(specs)),
                    structure="channel")
    x, y = torch.randn(16, *shape), torch.randint(0, 10, (16,))
    apply_policy(model, policy, specs, x[:8])
    result = fine_tune(model, x, y, steps=1, batch_size=16, lr=0.01, seed=0)
    assert torch.isfinite(torch.tensor(result["loss"]))
    summary = compression_summary(model)
    charged = {layer.name: layer.kept_out_channels for layer in effective_layers(specs, policy)}
    assert {name: summary[name]["kept_channels"] for name in charged} == charged
    for spec in specs:  # a depthwise conv keeps exactly its producer's channels
        if spec.groups > 1 and spec.groups == spec.in_channels == spec.out_channels:
            kept = [model.get_submodule(n).weight.detach().flatten(1).any(dim=1) for n in (spec.name, spec.producer)]
            assert torch.equal(*kept)


def old_resnet20_table(model) -> dict[str, dict]:
    """ResNet20.channel_wiring as it was before the tracing replaced it."""
    wiring = {"conv1": {"producer": None, "tie_group": "stage1"}}
    stream_leader = "conv1"
    for stage_index in range(1, 4):
        for block_index, block in enumerate(getattr(model, f"layer{stage_index}")):
            prefix = f"layer{stage_index}.{block_index}"
            wiring[f"{prefix}.conv1"] = {"producer": stream_leader}
            wiring[f"{prefix}.conv2"] = {"producer": f"{prefix}.conv1", "tie_group": f"stage{stage_index}"}
            if len(block.shortcut) > 0:
                wiring[f"{prefix}.shortcut.0"] = {"producer": stream_leader, "tie_group": f"stage{stage_index}"}
                stream_leader = f"{prefix}.conv2"
    wiring["fc"] = {"producer": stream_leader, "prunable_outputs": False}
    return wiring


OLD_LENET5_CHAIN = {"conv1": {"producer": None}, "conv2": {"producer": "conv1"},
                    "fc1": {"producer": "conv2", "input_channel_multiplier": 16},
                    "fc2": {"producer": "fc1", "prunable_outputs": False}}


def normalized(rows: dict[str, dict]) -> dict:
    """Wiring with defaults filled in and tie groups as sets of members (names differ)."""
    members: dict = {}
    for name, row in rows.items():
        members.setdefault(row.get("tie_group") or name, set()).add(name)
    return {name: (row.get("producer"), row.get("input_channel_multiplier", 1), row.get("prunable_outputs", True),
                   frozenset(members[row.get("tie_group") or name])) for name, row in rows.items()}


@pytest.mark.parametrize("name, shape", [("resnet20", (3, 32, 32)), ("lenet5", (1, 28, 28))])
def test_traced_wiring_equals_the_old_tables(name, shape):
    model = create_model(name, in_channels=shape[0], num_classes=10, image_shape=shape)
    traced = {s.name: {"producer": s.producer, "input_channel_multiplier": s.input_channel_multiplier,
                       "tie_group": s.tie_group, "prunable_outputs": s.prunable_outputs}
              for s in profile_model(model, shape)}
    old = old_resnet20_table(model) if name == "resnet20" else OLD_LENET5_CHAIN
    assert list(traced) == list(old)
    assert normalized(traced) == normalized(old)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class Slicing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 1), nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.conv(x)[:, :2].mean((2, 3)))


class CalledOnTwoSizes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(F.max_pool2d(self.conv(x), 2)).mean((2, 3))


class DepthwiseTiedToItsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.dw, self.fc = nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Linear(4, 2)

    def forward(self, x):
        x = self.stem(x)
        return self.fc((self.dw(x) + x).mean((2, 3)))


@pytest.mark.parametrize("model, shape, message", [
    (Untraceable(), (4,), r"cannot trace model Untraceable with torch.fx"),
    (Slicing(), (1, 4, 4), r"node 'getitem'.*operation 'getitem'"),
    (ConcatNet(width_b=3), (1, 6, 6), r"node 'cat'.*\[6, 3\] channels"),
    (CalledOnTwoSizes(), (2, 8, 8), r"layer 'conv' is called twice on inputs of different shapes"),
    (DepthwiseTiedToItsInput(), (1, 4, 4), r"depthwise conv 'dw' has its output channels tied to \['stem'\]"),
    (nn.Sequential(nn.Flatten(), nn.ReLU()), (4,), r"runs no Conv2d or Linear layer"),
    (nn.Sequential(nn.Conv2d(1, 4, 1), nn.PixelShuffle(2), nn.Conv2d(1, 2, 1)), (1, 4, 4),
     r"module '1' is a PixelShuffle"),
])
def test_what_cannot_be_priced_is_named(model, shape, message):
    with pytest.raises(ValueError, match=message):
        profile_model(model, shape)


def test_hardware_profiling_modules_import_without_torch():
    code = ("import json, sys\nimport hardware.profiler, hardware.wiring, hardware.cost\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
