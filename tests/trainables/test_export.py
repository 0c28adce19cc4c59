"""trainables.export: bit packing, the sparse index, model.evo.pt round trip, ONNX in onnxruntime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hardware.cost import effective_layers
from hardware.policy import LayerPolicy, Policy
from hardware.profiler import profile_model
from hardware.size import relative_index_gap_bits, sparse_index_bits
from trainables.compress import apply_policy
from trainables.export import check_onnx, export_onnx, load_compressed, read_compressed, save_compressed, write_report
from trainables.export.pack import decode_sparse_index, encode_sparse_index, pack_codes, unpack_codes
from trainables.models import create_model
from trainables.user_model import build_from_reference

import onnx  # noqa: E402  the `export` extra, which the README's test command installs: no skip
import onnxruntime  # noqa: E402,F401

LENET_REF = {"kind": "zoo", "name": "lenet5", "in_channels": 1, "num_classes": 10, "image_shape": [1, 20, 20]}  # fc1 reads 2x2 per channel
POLICIES = {
    "unstructured": Policy((("conv1", LayerPolicy(0.5, 1.0, 4, 8)), ("conv2", LayerPolicy(0.8, 1.0, 3, 4)),
                            ("fc1", LayerPolicy(0.9, 1.0, 2, 3)), ("fc2", LayerPolicy(0.0, 1.0, 8, 8)))),
    "channel": Policy((("conv1", LayerPolicy(0.0, 0.5, 4, 8)), ("conv2", LayerPolicy(0.0, 0.6, 3, 4)),
                       ("fc1", LayerPolicy(0.0, 0.3, 32, 3)), ("fc2", LayerPolicy(0.0, 1.0, 8, 32))),
                      structure="channel"),
}


# -- packing ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", range(2, 9))
def test_codes_round_trip_at_every_width_including_extremes(bits):
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = np.concatenate([[low, high, 0, -1, 1, low, high], np.random.default_rng(bits).integers(low, high + 1, 101)])
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == math.ceil(codes.size * bits / 8)
    assert np.array_equal(unpack_codes(packed, bits, codes.size), codes)


def test_pack_rejects_codes_outside_the_width():
    with pytest.raises(ValueError, match=r"outside the 3-bit signed range \[-4, 3\]"):
        pack_codes(np.array([4]), 3)


@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.2, 0.45, 0.6, 1.0])
def test_sparse_index_form_and_size_as_hardware_size_counts(density):
    slots = 4000
    kept = np.random.default_rng(1).random(slots) < density
    nnz = int(kept.sum())
    index = encode_sparse_index(kept)
    priced = sparse_index_bits(slots, nnz)
    if priced == 0:
        assert index["kind"] == ("dense" if nnz == slots else "empty") and index["data"].size == 0
    elif priced == slots:
        assert index["kind"] == "bitmask" and index["data"].size == slots // 8
    else:
        assert index["kind"] == "relative" and index["gap_bits"] == relative_index_gap_bits(slots, nnz)
        # kept weights at random: the fillers the price expects, within 5 % (and the last byte)
        assert abs(8 * index["data"].size - priced) <= 0.05 * priced + 8, (8 * index["data"].size, priced)
    assert np.array_equal(decode_sparse_index(index, slots), kept)


def test_relative_index_with_long_gaps_decodes_exactly():
    kept = np.zeros(10_000, dtype=bool)
    kept[[0, 1, 7, 40, 41, 3000, 9998]] = True  # gaps far beyond 2^g - 1: fillers
    kept[np.arange(5000, 5400, 4)] = True
    index = encode_sparse_index(kept)
    assert index["kind"] == "relative"
    assert np.array_equal(decode_sparse_index(index, kept.size), kept)


# -- model.evo.pt ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_lenet():
    """LeNet-5 on 20x20 inputs after a few SGD steps on a learnable random task."""
    torch.manual_seed(0)
    model = build_from_reference(LENET_REF)
    x = torch.randn(512, 1, *LENET_REF["image_shape"][1:])
    y = (x[:, 0, :8].mean(dim=(1, 2)) * 20).long().clamp(-5, 4) + 5
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(30):
        batch = slice(step % 8 * 64, step % 8 * 64 + 64)
        optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model.state_dict(), x, y


def _compressed(trained, structure):
    state, x, _ = trained
    model = build_from_reference(LENET_REF)
    model.load_state_dict(state)
    specs = profile_model(model, tuple(LENET_REF["image_shape"]))
    return apply_policy(model.eval(), POLICIES[structure], specs, x[:256]), specs


@pytest.mark.parametrize("structure", ["unstructured", "channel"])
def test_load_compressed_equals_the_fake_quantized_model(trained_lenet, structure, tmp_path):
    model, specs = _compressed(trained_lenet, structure)
    saved = save_compressed(model, POLICIES[structure], specs, tmp_path / "model.evo.pt", model_ref=LENET_REF)
    torch.load(saved["path"], weights_only=True)  # plain tensors only
    loaded = load_compressed(saved["path"])
    x = trained_lenet[1]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # payload within 5 % of the priced honest size (and never below it)
    assert 1.0 <= saved["payload_vs_honest"] <= 1.05
    assert saved["file_bytes"] > saved["payload_bytes"]


def test_a_loaded_model_saves_and_reloads_to_the_same_outputs(trained_lenet, tmp_path):
    model, specs = _compressed(trained_lenet, "unstructured")
    first = save_compressed(model, POLICIES["unstructured"], specs, tmp_path / "a.evo.pt", model_ref=LENET_REF)
    read = read_compressed(first["path"])
    assert read.policy == POLICIES["unstructured"] and read.specs == specs
    second = save_compressed(read.model, read.policy, read.specs, tmp_path / "b.evo.pt", model_ref=LENET_REF)
    assert second["payload_bytes"] == first["payload_bytes"]
    with torch.no_grad():
        assert torch.equal(load_compressed(second["path"])(trained_lenet[1]), model(trained_lenet[1]))
    # and it exports to the same ONNX graph as the model it was saved from
    x, y = trained_lenet[1], trained_lenet[2]
    exported = export_onnx(read.model, read.policy, read.specs, tmp_path / "m.onnx", x[:2])
    assert check_onnx(exported["path"], model, x, y)["agreement"] >= 0.999


@pytest.mark.parametrize("weight_bits", [4, 32])
def test_batchnorm_folds_into_its_conv_and_the_size_is_the_priced_one(tmp_path, weight_bits):
    torch.manual_seed(0)
    ref = {"kind": "zoo", "name": "resnet20", "in_channels": 3, "num_classes": 10, "image_shape": [3, 8, 8]}
    model = build_from_reference(ref)
    x = torch.randn(64, 3, 8, 8)
    model.train()(x)  # running statistics move away from their defaults
    with torch.no_grad():  # and the affine parameters too, one factor negative
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.weight[0] = -0.7
                module.bias.uniform_(-0.2, 0.2)
    specs = profile_model(model, (3, 8, 8))
    policy = Policy.uniform([s.name for s in specs], weight_bits=weight_bits, activation_bits=6, sparsity=0.7)
    apply_policy(model.eval(), policy, specs, x)
    saved = save_compressed(model, policy, specs, tmp_path / "resnet.evo.pt", model_ref=ref)
    payload = torch.load(saved["path"], weights_only=True)
    assert len(payload["folded_norms"]) == 21 == len(specs) - 1  # every conv's norm; the classifier has none
    assert not any(".bn" in name or "shortcut.1" in name for name in payload["float_tensors"])
    assert 1.0 <= saved["payload_vs_honest"] <= 1.05
    loaded = load_compressed(saved["path"])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.modules())
    with torch.no_grad():
        # folding reorders float arithmetic; the next layer's input quantizer absorbs the rounding
        ours, theirs = loaded(x), model(x)
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.equal(ours.argmax(1), theirs.argmax(1))
    exported = export_onnx(loaded, policy, specs, tmp_path / "m.onnx", x[:2])
    assert "BatchNormalization" not in exported["ops"]
    assert check_onnx(exported["path"], model, x, torch.zeros(len(x), dtype=torch.long))["agreement"] >= 0.999


def test_save_rejects_an_unknown_model_reference(trained_lenet, tmp_path):
    model, specs = _compressed(trained_lenet, "unstructured")
    with pytest.raises(ValueError, match="model_ref=.*must be a model reference"):
        save_compressed(model, POLICIES["unstructured"], specs, tmp_path / "m.evo.pt",
                        model_ref={"kind": "zoo", "name": "vgg", "in_channels": 1, "num_classes": 10,
                                   "image_shape": [1, 8, 8]})


# -- ONNX --------------------------------------------------------------------------------
def _weight_quantizers(path):
    graph = onnx.load(str(path)).graph
    initializers = {init.name: list(init.dims) for init in graph.initializer}
    return graph, {node.input[0]: node for node in graph.node
                   if node.op_type == "QuantizeLinear" and node.input[0] in initializers}, initializers


def test_onnx_has_per_channel_weight_qdq_and_agrees_with_torch(trained_lenet, tmp_path):
    model, specs = _compressed(trained_lenet, "unstructured")
    _, x, y = trained_lenet
    result = export_onnx(model, POLICIES["unstructured"], specs, tmp_path / "m.onnx", x[:2])
    graph, weight_q, _ = _weight_quantizers(result["path"])
    assert len(weight_q) == 4  # every layer's weight has 4..8 bits here
    for node in weight_q.values():
        assert {a.name: a.i for a in node.attribute}.get("axis") == 0
    assert result["ops"]["QuantizeLinear"] == result["ops"]["DequantizeLinear"] == 8  # 4 weights + 4 inputs
    # the narrowed input ranges: a Clip in front of the 2..7-bit inputs' QuantizeLinear
    assert result["ops"]["Clip"] == 2
    checked = check_onnx(result["path"], model, x, y, batch_size=200)
    assert checked["samples"] == len(x) and checked["agreement"] >= 0.999
    assert abs(checked["onnx_accuracy"] - checked["torch_accuracy"]) <= 0.001


@pytest.mark.parametrize("zoo", ["lenet5", "mlp"])
def test_channel_pruned_onnx_has_the_smaller_shapes(trained_lenet, zoo, tmp_path):
    if zoo == "lenet5":
        model, specs = _compressed(trained_lenet, "channel")
        policy, x = POLICIES["channel"], trained_lenet[1]
        expected = {"conv1": [10, 1, 5, 5], "conv2": [30, 10, 5, 5], "fc1": [150, 120], "fc2": [10, 150]}
    else:
        torch.manual_seed(0)
        model, x = create_model("mlp", in_channels=1, num_classes=10, image_shape=(1, 8, 8)), torch.randn(64, 1, 8, 8)
        specs = profile_model(model, (1, 8, 8))
        policy = Policy.uniform([s.name for s in specs], weight_bits=4, activation_bits=4, keep_ratio=0.5,
                                structure="channel")
        apply_policy(model.eval(), policy, specs, x)
        expected = {"fc1": [32, 64], "fc2": [16, 32], "fc3": [10, 16]}
    result = export_onnx(model, policy, specs, tmp_path / "m.onnx", x[:2])
    _, _, initializers = _weight_quantizers(result["path"])
    shapes = {name: initializers[f"{name}.parametrizations.weight.original"] if
              f"{name}.parametrizations.weight.original" in initializers else initializers[f"{name}.weight"]
              for name in expected}
    assert shapes == expected
    priced = {layer.name: [layer.kept_out_channels, layer.kept_in_channels] for layer in effective_layers(specs, policy)}
    assert {name: shape[:2] for name, shape in shapes.items()} == priced
    checked = check_onnx(result["path"], model, x, torch.zeros(len(x), dtype=torch.long))
    assert checked["agreement"] >= 0.999


def test_channel_pruned_convs_with_batchnorm_export_with_the_norms_folded(tmp_path):
    from pathlib import Path

    torch.manual_seed(0)
    ref = {"kind": "user", "spec": f"{Path(__file__).with_name('user_factories.py')}:conv_bn_chain", "model_args": {"width": 32}}
    model, x = build_from_reference(ref), torch.randn(128, 1, 6, 6)
    model.train()(x)
    specs = profile_model(model, (1, 6, 6))
    policy = Policy.uniform([s.name for s in specs], weight_bits=4, activation_bits=4, keep_ratio=0.5,
                            structure="channel")
    apply_policy(model.eval(), policy, specs, x)
    saved = save_compressed(model, policy, specs, tmp_path / "m.evo.pt", model_ref=ref)
    assert torch.load(saved["path"], weights_only=True)["folded_norms"] == {"0": "1", "3": "4"}
    assert 1.0 <= saved["payload_vs_honest"] <= 1.05  # the norms count one bias each, as priced
    with torch.no_grad():
        ours, theirs = load_compressed(saved["path"])(x), model(x)
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.equal(ours.argmax(1), theirs.argmax(1))
    result = export_onnx(model, policy, specs, tmp_path / "m.onnx", x[:2])
    _, _, initializers = _weight_quantizers(result["path"])
    assert [initializers[f"{name}.parametrizations.weight.original"][:2] for name in ("0", "3", "8")] == \
        [[16, 1], [32, 16], [3, 32]]  # half the channels of each conv gone, and the columns that read them
    assert "BatchNormalization" not in result["ops"]
    assert check_onnx(result["path"], model, x, torch.zeros(len(x), dtype=torch.long))["agreement"] >= 0.999


class _InvertedResidualNet(torch.nn.Module):
    """stem + BN, then a MobileNetV2 block (pointwise expand, depthwise 3x3, pointwise project, each
    with BN, added to the block's input), a head conv and a classifier; 1 x 8 x 8 inputs."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem, self.stem_bn = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.expand, self.expand_bn = nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(16)
        self.project, self.project_bn = nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8)
        self.head, self.classifier = nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.Linear(12, 10)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        out = torch.relu(self.expand_bn(self.expand(x)))
        out = torch.relu(self.depthwise_bn(self.depthwise(out)))
        x = x + self.project_bn(self.project(out))
        return self.classifier(torch.relu(self.head(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("net", ["resnet20", "inverted_residual"])
def test_channel_pruned_residual_and_depthwise_models_export_smaller(net, tmp_path):
    torch.manual_seed(0)
    if net == "resnet20":
        model, shape = create_model("resnet20", in_channels=3, num_classes=10, image_shape=(3, 8, 8)), (3, 8, 8)
    else:
        model, shape = _InvertedResidualNet(), (1, 8, 8)
    x = torch.randn(256, *shape)
    model.train()(x)  # running statistics away from their defaults
    specs = profile_model(model, shape)
    policy = Policy.uniform([s.name for s in specs], weight_bits=4, activation_bits=6, keep_ratio=0.5,
                            structure="channel")
    apply_policy(model.eval(), policy, specs, x)
    result = export_onnx(model, policy, specs, tmp_path / "m.onnx", x[:2])
    _, _, initializers = _weight_quantizers(result["path"])
    shapes = {spec.name: initializers[f"{spec.name}.parametrizations.weight.original"] for spec in specs}
    priced = {layer.name: [layer.kept_out_channels, layer.kept_in_channels] for layer in effective_layers(specs, policy)}
    for spec in specs:  # a depthwise weight keeps one input column per channel
        assert shapes[spec.name][:2] == ([priced[spec.name][0], 1] if spec.is_depthwise else priced[spec.name]), spec.name
    assert min(shapes[spec.name][0] / spec.out_channels for spec in specs) == 0.5  # the channels are gone
    assert "BatchNormalization" not in result["ops"]
    checked = check_onnx(result["path"], model, x, torch.zeros(len(x), dtype=torch.long))
    assert checked["agreement"] >= 0.999


def test_channel_export_of_other_grouped_convs_is_refused(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, groups=2),
                                torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3))
    specs = profile_model(model, (1, 8, 8))
    policy = Policy.uniform([s.name for s in specs], weight_bits=4, keep_ratio=0.5, structure="channel")
    apply_policy(model.eval(), policy, specs, torch.randn(4, 1, 8, 8))
    with pytest.raises(ValueError, match=r"layer '2' is a grouped conv \(groups=2, not depthwise\)"):
        export_onnx(model, policy, specs, tmp_path / "m.onnx", torch.randn(2, 1, 8, 8))


# -- report ------------------------------------------------------------------------------
def test_report_has_a_row_per_layer_and_the_policy_loads_back(tmp_path):
    model = build_from_reference(LENET_REF)
    specs = profile_model(model, tuple(LENET_REF["image_shape"]))
    paths = write_report(tmp_path, specs, POLICIES["unstructured"], measured={"agreement": 1.0})
    text = open(paths["report"]).read()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(specs) + 1  # header, rule, layers, total
    assert rows[-1].startswith("| **total**") and "- agreement: 1.0" in text
    assert Policy.load(paths["policy"]) == POLICIES["unstructured"]
