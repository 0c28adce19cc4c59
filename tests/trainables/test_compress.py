"""Compression transforms: masks, weight and input fake quantization, stripping.

Small nets on the bundled digits data (8x8), plus the real LeNet-5 and ResNet-20 zoo models
on random inputs. Every check reads the *effective* weight (``layer.weight`` through the
parametrization) or what a layer really receives, never the transform's own bookkeeping.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from hardware.policy import LayerPolicy, Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy, compression_summary, is_compressed, strip_compression
from trainables.data import load_dataset, to_tensors
from trainables.models import create_model
from hardware.cost import effective_layers, kept_channels, kept_weights
from trainables.prune import channel_mask_from_norms, unstructured_mask
from trainables.quantize import InputQuantizer, WeightTransform, quantize_layer_input
from trainables.train import fine_tune

DIGITS_SHAPE = (1, 8, 8)



@pytest.fixture(scope="module")
def digits():
    splits = to_tensors(load_dataset("digits", seed=0, limit_train=512))
    return splits.train_x, splits.train_y


def small_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Linear(32, 10),
    )


def compressed_cnn(policy_kw: dict, calibration: torch.Tensor, seed: int = 0):
    model = small_cnn(seed)
    specs = profile_model(model, DIGITS_SHAPE)
    policy = Policy.uniform([s.name for s in specs], **policy_kw)
    return apply_policy(model, policy, specs, calibration), specs, policy


def effective_weights(model: nn.Module, specs) -> dict[str, torch.Tensor]:
    return {s.name: model.get_submodule(s.name).weight.detach().clone() for s in specs}


# -- pruning -----------------------------------------------------------------------------------
def test_magnitude_mask_keeps_the_largest_weights_hand_computed():
    weight = torch.tensor([[0.1, -0.5, 0.02], [0.3, 0.05, -0.2]])
    mask = unstructured_mask(weight, sparsity=0.5)  # keep round(0.5 * 6) = 3: -0.5, 0.3, -0.2
    assert mask.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


@pytest.mark.parametrize("sparsity,total,expected", [(0.5, 6, 3), (0.25, 10, 8), (0.9, 430500, 43050), (0.99, 10, 0)])
def test_kept_counts_round_like_the_cost_model(sparsity, total, expected):
    assert kept_weights(total, sparsity) == expected == round((1 - sparsity) * total)
    assert int(unstructured_mask(torch.randn(total), sparsity).sum()) == expected


def test_channel_keep_count_never_drops_below_one():
    assert kept_channels(16, 0.5) == 8
    assert kept_channels(16, 0.01) == 1
    norms = torch.tensor([0.3, 2.0, 1.0, 0.1])
    assert channel_mask_from_norms(norms, 0.5).tolist() == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("weight_bits", [32, 4])
def test_masked_weights_stay_zero_through_fine_tuning(digits, sparsity, weight_bits):
    x, y = digits
    model, specs, _ = compressed_cnn({"sparsity": sparsity, "weight_bits": weight_bits}, x[:64])
    masks = {s.name: effective_weights(model, specs)[s.name] != 0 for s in specs}
    before = effective_weights(model, specs)
    fine_tune(model, x, y, steps=20, batch_size=32, lr=0.05, seed=0)
    after = effective_weights(model, specs)
    summary = compression_summary(model)
    for spec in specs:
        kept = kept_weights(spec.weights, sparsity)
        assert summary[spec.name]["kept_weights"] == kept
        assert torch.all(after[spec.name][~masks[spec.name]] == 0)  # pruned: exactly zero
        assert not torch.equal(before[spec.name], after[spec.name])  # but the rest trained
        if weight_bits == 32:  # float weights never land on zero by chance
            assert int(torch.count_nonzero(after[spec.name])) == kept == int(masks[spec.name].sum())
        else:  # rounding may zero a small kept weight, never revive a pruned one
            assert int(torch.count_nonzero(after[spec.name])) <= kept


def test_mask_is_fixed_at_apply_time(digits):
    x, _ = digits
    model, specs, _ = compressed_cnn({"sparsity": 0.5}, x[:64])
    for spec in specs:
        layer = model.get_submodule(spec.name)
        pruned = layer.weight.detach() == 0
        kept_before = layer.weight.detach()[~pruned].clone()
        with torch.no_grad():  # make the pruned weights the largest: a recomputed mask would flip
            layer.parametrizations.weight.original[pruned] = 10.0
        assert torch.all(layer.weight.detach()[pruned] == 0)
        assert torch.equal(layer.weight.detach()[~pruned], kept_before)


# -- weight quantization -------------------------------------------------------------------------
def test_weight_quantization_hand_computed():
    # 3 bits, full range [-4, 3]: of the clip candidates the MSE search keeps ratio 1 here,
    # scale = 0.7 / 3; -0.3 / scale = -1.29 -> -1, 0.5 -> 2.14 -> 2, 0.1 -> 0.43 -> 0;
    # the all-zero (pruned) channel stays zero rather than dividing by a zero scale.
    weight = torch.tensor([[0.7, -0.3, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0]])
    transform = WeightTransform(weight, None, weight_bits=3)
    scale = 0.7 / 3
    expected = torch.tensor([[3 * scale, -1 * scale, 2 * scale, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(transform(weight), expected)
    assert (transform.quant_min, transform.quant_max) == (-4, 3)


def test_weight_clipping_hand_computed():
    # 2 bits, grid {-2s, -s, 0, s}, candidates s = ratio x max|w|. One outlier 1.0 among 40
    # weights of 0.3: for s in (0.2, 0.6) each 0.3 rounds to s and 1.0 clips to s, so the error
    # is 40 (s - 0.3)^2 + (1 - s)^2, least at s = 13 / 41 = 0.317 -> the grid's 0.32.
    # Max-abs (s = 1) would round all 40 to zero: error 40 x 0.09 = 3.6 against 0.48.
    many = torch.cat([torch.tensor([1.0]), torch.full((40,), 0.3)])[None]
    torch.testing.assert_close(WeightTransform(many, None, 2).channel_scales(), torch.tensor([0.32]))
    # with few small weights keeping the outlier is better: 1.0, 0.1, 0.2, -0.2 at s = 1 err 0.09
    few = torch.tensor([[1.0, 0.1, 0.2, -0.2]])
    torch.testing.assert_close(WeightTransform(few, None, 2).channel_scales(), torch.tensor([1.0]))
    assert WeightTransform(many, None, 2, scale_init="max").channel_scales().item() == 1.0


@pytest.mark.parametrize("weight_bits", [2, 3, 4, 8])
def test_each_channel_takes_at_most_2_to_the_b_values_on_its_scale_grid(digits, weight_bits):
    x, y = digits
    model, specs, _ = compressed_cnn({"weight_bits": weight_bits, "sparsity": 0.3}, x[:64])
    fine_tune(model, x, y, steps=20, batch_size=32, lr=0.05, seed=0)
    for spec in specs:
        layer = model.get_submodule(spec.name)
        transform = layer.parametrizations.weight[0]
        rows = layer.weight.detach().flatten(1)
        scale = transform.channel_scales(layer.weight)[:, None]  # the learned steps forward uses
        levels = rows / scale
        torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)  # multiples of the scale
        assert transform.quant_min <= levels.round().min() and levels.round().max() <= transform.quant_max
        assert transform.quant_max == 2 ** (weight_bits - 1) - 1
        assert transform.quant_min == (-(2 ** (weight_bits - 1)) if weight_bits <= 4 else -transform.quant_max)
        distinct = max(len(torch.unique(row)) for row in rows)
        assert 2 <= distinct <= 2**weight_bits
        assert compression_summary(model)[spec.name]["max_distinct_per_channel"] == distinct


def test_float_bits_leave_weights_untouched(digits):
    x, _ = digits
    model = small_cnn()
    originals = {n: p.detach().clone() for n, p in model.named_parameters()}
    specs = profile_model(model, DIGITS_SHAPE)
    apply_policy(model, Policy.float([s.name for s in specs]), specs, x[:16])
    assert not is_compressed(model)
    for spec in specs:
        layer = model.get_submodule(spec.name)
        assert not parametrize.is_parametrized(layer)
        assert torch.equal(layer.weight, originals[f"{spec.name}.weight"])


def test_mixed_policy_compresses_only_the_layers_it_names(digits):
    x, _ = digits
    model = small_cnn()
    specs = profile_model(model, DIGITS_SHAPE)
    names = [s.name for s in specs]
    layers = {n: LayerPolicy() for n in names} | {names[1]: LayerPolicy(weight_bits=4, activation_bits=6)}
    apply_policy(model, Policy(tuple(layers.items())), specs, x[:16])
    assert list(compression_summary(model)) == [names[1]]
    assert compression_summary(model)[names[1]]["activation_bits"] == 6


# -- activation quantization -----------------------------------------------------------------------
@pytest.mark.parametrize("activation_bits", [2, 4, 8])
def test_layer_inputs_take_at_most_2_to_the_b_values(digits, activation_bits):
    x, _ = digits
    model, specs, _ = compressed_cnn({"activation_bits": activation_bits}, x[:128])
    seen = {}
    for spec in specs:  # registered after apply_policy's hook, so it sees what the layer sees
        model.get_submodule(spec.name).register_forward_pre_hook(lambda m, a, n=spec.name: seen.__setitem__(n, a[0]))
    model(x[128:256])
    for spec in specs:
        assert 2 <= len(torch.unique(seen[spec.name])) <= 2**activation_bits
    # inputs after a ReLU calibrate to zero point 0, so every level lies at or above zero
    assert compression_summary(model)["3"]["activation_zero_point"] == 0
    assert seen["3"].min() == 0


@pytest.mark.parametrize("low,high", [(0.0, 2.55), (-1.3, 2.1), (-3.0, -1.0)])
def test_cpu_input_quantizer_matches_torch_fake_quant(low, high):
    quantizer = InputQuantizer(4, low, high)
    generator = torch.Generator().manual_seed(0)
    values = (torch.randn(4096, generator=generator) * 3).requires_grad_()
    reference_input = values.detach().clone().requires_grad_()
    ours = quantizer(values)
    reference = torch.fake_quantize_per_tensor_affine(reference_input, quantizer.scale.detach(), quantizer.zero_point,
                                                      0, 15)
    assert torch.equal(ours, reference)
    upstream = torch.randn(4096, generator=generator)
    ours.backward(upstream)
    reference.backward(upstream)
    assert torch.equal(values.grad, reference_input.grad)
    assert 0 < int((values.grad == 0).sum()) < 4096  # the clipped region really is clipped


def test_input_range_is_calibrated_once_and_fixed(digits):
    x, y = digits
    model, _, _ = compressed_cnn({"activation_bits": 8}, x[:64])
    scales = {n: m.quant_params()[0] for n, m in model.named_modules() if isinstance(m, InputQuantizer)}
    fine_tune(model, x, y, steps=5, batch_size=32, seed=0, scale_lr=0.0)  # lr 0 freezes the learned scales
    model(x[:64] * 10)
    assert scales == {n: m.quant_params()[0] for n, m in model.named_modules() if isinstance(m, InputQuantizer)}
    # by default the scales learn, but no later input recalibrates them
    fine_tune(model, x, y, steps=5, batch_size=32, seed=0)
    learned = {n: m.quant_params()[0] for n, m in model.named_modules() if isinstance(m, InputQuantizer)}
    assert learned != scales
    model(x[:64] * 10)
    assert learned == {n: m.quant_params()[0] for n, m in model.named_modules() if isinstance(m, InputQuantizer)}


# -- gradient flow ---------------------------------------------------------------------------------
def test_straight_through_gradient_reaches_the_kept_weights_only(digits):
    x, y = digits
    model, specs, _ = compressed_cnn({"sparsity": 0.5, "weight_bits": 4, "activation_bits": 8}, x[:64])
    F.cross_entropy(model(x[:64]), y[:64]).backward()
    for spec in specs:
        layer = model.get_submodule(spec.name)
        kept = layer.weight.detach() != 0
        grad = layer.parametrizations.weight.original.grad
        assert grad[kept].abs().sum() > 0  # fake quantization passes the gradient straight through
        pruned = layer.parametrizations.weight[0].mask == 0
        assert torch.all(grad[pruned] == 0)  # the mask multiplies, so pruned weights get none


# -- channel pruning ---------------------------------------------------------------------------------
class TinyResidual(nn.Module):
    """stem -> block(conv_a, conv_b) + identity -> classifier; stem and conv_b are summed."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv_a, self.bn_a = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv_b, self.bn_b = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        stream = F.relu(self.stem_bn(self.stem(x)))
        hidden = F.relu(self.bn_a(self.conv_a(stream)))
        return F.relu(self.bn_b(self.conv_b(hidden)) + stream)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def set_channel_norms(conv: nn.Conv2d, norms: list[float]) -> None:
    per_channel = conv.weight[0].numel()
    with torch.no_grad():
        for channel, norm in enumerate(norms):
            conv.weight[channel].fill_(norm / per_channel**0.5)


def test_tie_group_shares_one_mask_decided_on_summed_norms(digits):
    x, y = digits
    torch.manual_seed(0)
    model = TinyResidual()
    # stem alone would keep {0, 1}, conv_b alone {2, and 0 or 1}; the sum [4.5, 3.5, 5, 1] keeps {0, 2}
    set_channel_norms(model.stem, [4.0, 3.0, 2.0, 1.0])
    set_channel_norms(model.conv_b, [0.5, 0.5, 3.0, 0.0])
    with torch.no_grad():
        model.bn_b.bias.fill_(0.3)  # a shift that would leak into pruned channels if BN were not masked
    specs = profile_model(model, DIGITS_SHAPE)
    layers = {
        "stem": LayerPolicy(keep_ratio=0.5),  # the leader's ratio holds for the whole group
        "conv_a": LayerPolicy(keep_ratio=0.25),
        "conv_b": LayerPolicy(keep_ratio=1.0),
        "fc": LayerPolicy(keep_ratio=0.5, weight_bits=4),  # its outputs are classes: all kept
    }
    apply_policy(model, Policy(tuple(layers.items()), structure="channel"), specs, x[:64])
    fine_tune(model, x, y, steps=20, batch_size=32, lr=0.05, seed=0)
    kept_channels = {n: model.get_submodule(n).weight.detach().flatten(1).any(dim=1).tolist() for n in layers}
    assert kept_channels["stem"] == kept_channels["conv_b"] == [True, False, True, False]
    assert sum(kept_channels["conv_a"]) == 1
    assert all(kept_channels["fc"])
    features = model.features(x[:32]).detach()
    assert torch.all(features[:, [1, 3]] == 0)  # consumers read zeros from pruned channels
    assert features[:, [0, 2]].abs().sum() > 0
    # consumers' input channels are not masked separately: the cost models account for them
    assert model.conv_a.weight.detach()[:, [1, 3]].abs().sum() > 0
    assert compression_summary(model)["stem"]["kept_channels"] == 2


def test_channel_pruning_on_lenet_masks_biases():
    model = create_model("lenet5", in_channels=1, num_classes=10, image_shape=(1, 28, 28))
    specs = profile_model(model, (1, 28, 28))
    policy = Policy.uniform([s.name for s in specs], keep_ratio=0.3, structure="channel", weight_bits=4)
    apply_policy(model, policy, specs, torch.randn(16, 1, 28, 28))
    summary = compression_summary(model)
    for spec in specs:
        expected = kept_channels(spec.out_channels, 0.3) if spec.prunable_outputs else spec.out_channels
        assert summary[spec.name]["kept_channels"] == expected
        layer = model.get_submodule(spec.name)
        pruned = ~layer.weight.detach().flatten(1).any(dim=1)
        assert torch.all(layer.bias.detach()[pruned] == 0)


def test_depthwise_conv_keeps_its_producers_channels(digits):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )
    specs = profile_model(model, DIGITS_SHAPE)
    policy = Policy.uniform([s.name for s in specs], keep_ratio=0.5, structure="channel")
    apply_policy(model, policy, specs, digits[0][:16])
    kept = {n: model.get_submodule(n).weight.detach().flatten(1).any(dim=1) for n in ("0", "2")}
    assert torch.equal(kept["0"], kept["2"]) and int(kept["0"].sum()) == 4
    priced = {layer.name: layer.kept_out_channels for layer in effective_layers(specs, policy)}
    summary = compression_summary(model)
    assert list(summary) == ["0", "2"]  # the classifier keeps its outputs and float weights: untouched
    assert {name: priced[name] for name in summary} == {name: row["kept_channels"] for name, row in summary.items()}


# -- errors -------------------------------------------------------------------------------------------
def test_policy_model_mismatch_names_the_layers(digits):
    model = small_cnn()
    specs = profile_model(model, DIGITS_SHAPE)
    policy = Policy.uniform(["0", "3", "classifier"], weight_bits=4)
    with pytest.raises(ValueError, match=r"missing layers \['7', '9'\].*unknown layers \['classifier'\]"):
        apply_policy(model, policy, specs, digits[0][:8])


@pytest.mark.parametrize(
    "other,message",
    [
        (nn.Sequential(nn.Conv2d(1, 8, 3, padding=1)), "the model has no layer '3'"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "layer '0' is a Flatten; compressible layers are"),
    ],
)
def test_specs_of_another_model_are_rejected(digits, other, message):
    specs = profile_model(small_cnn(), DIGITS_SHAPE)
    with pytest.raises(ValueError, match=message):
        apply_policy(other, Policy.uniform([s.name for s in specs], weight_bits=4), specs, digits[0][:8])


def test_empty_calibration_batch_is_refused():
    model = small_cnn()
    specs = profile_model(model, DIGITS_SHAPE)
    with pytest.raises(ValueError, match="non-empty batch"):
        apply_policy(model, Policy.uniform([s.name for s in specs], activation_bits=8), specs, torch.empty(0, 1, 8, 8))


def test_compressing_twice_is_refused(digits):
    model, specs, policy = compressed_cnn({"weight_bits": 4}, digits[0][:8])
    with pytest.raises(ValueError, match="already compressed"):
        apply_policy(model, policy, specs, digits[0][:8])


# -- strip, copies, checkpoints ----------------------------------------------------------------------
def test_strip_gives_a_plain_model_with_identical_outputs(digits):
    x, y = digits
    model, specs, _ = compressed_cnn({"sparsity": 0.6, "weight_bits": 3}, x[:64])
    fine_tune(model, x, y, steps=10, batch_size=32, seed=0)
    model.eval()
    expected, effective = model(x[:64]).detach(), effective_weights(model, specs)
    strip_compression(model)
    assert not is_compressed(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert torch.equal(model(x[:64]), expected)
    for spec in specs:
        assert type(model.get_submodule(spec.name).weight) is nn.Parameter
        assert torch.equal(model.get_submodule(spec.name).weight.detach(), effective[spec.name])


def test_strip_removes_input_quantization_and_keeps_compressed_weights(digits):
    x, _ = digits
    model, specs, _ = compressed_cnn({"sparsity": 0.5, "weight_bits": 4, "activation_bits": 4}, x[:64])
    effective = effective_weights(model, specs)
    strip_compression(model)
    seen = {}
    model.get_submodule("3").register_forward_pre_hook(lambda m, a: seen.__setitem__("input", a[0]))
    model(x[:64])
    assert len(torch.unique(seen["input"])) > 16  # float inputs again
    for spec in specs:
        layer = model.get_submodule(spec.name)
        assert not hasattr(layer, "input_quantizer")
        assert quantize_layer_input not in layer._forward_pre_hooks.values()
        assert torch.equal(layer.weight.detach(), effective[spec.name])


def test_state_dict_round_trip_and_deepcopy(digits):
    x, y = digits
    kw = {"sparsity": 0.5, "weight_bits": 4, "activation_bits": 8}
    model, _, _ = compressed_cnn(kw, x[:64])
    fine_tune(model, x, y, steps=10, batch_size=32, seed=0)
    model.eval()
    expected = model(x[:32])
    restored, _, _ = compressed_cnn(kw, x[64:128], seed=1)  # other weights, other calibration
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.eval()(x[:32]), expected)
    assert torch.equal(copy.deepcopy(model)(x[:32]), expected)


# -- the real zoo models -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape", [("lenet5", (1, 28, 28)), ("resnet20", (3, 32, 32))])
@pytest.mark.parametrize("structure", ["unstructured", "channel"])
def test_zoo_models_compress_train_and_strip(name, shape, structure):
    torch.manual_seed(0)
    model = create_model(name, in_channels=shape[0], num_classes=10, image_shape=shape)
    specs = profile_model(model, shape)
    amount = {"sparsity": 0.5} if structure == "unstructured" else {"keep_ratio": 0.5}
    policy = Policy.uniform([s.name for s in specs], weight_bits=4, activation_bits=8, structure=structure, **amount)
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn((16, *shape), generator=generator), torch.randint(0, 10, (16,), generator=generator)
    apply_policy(model, policy, specs, images)
    fine_tune(model, images, labels, steps=2, batch_size=8, seed=0)
    summary = compression_summary(model)
    assert list(summary) == [s.name for s in specs]
    for priced in effective_layers(specs, policy):  # the counts the cost model charges
        row = summary[priced.name]
        assert row["max_distinct_per_channel"] <= 16 and row["activation_bits"] == 8
        if structure == "unstructured":
            assert row["kept_weights"] == priced.nnz >= row["nnz"]
        else:
            assert row["kept_channels"] == priced.kept_out_channels
    model.eval()
    expected = model(images).detach()
    assert torch.isfinite(expected).all()
    strip_compression(model)
    assert not is_compressed(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_transform_buffers_live_on_the_gpu():
    device = torch.device("cuda")
    model = small_cnn().to(device)
    specs = profile_model(model, DIGITS_SHAPE)
    policy = Policy.uniform([s.name for s in specs], sparsity=0.5, weight_bits=4, activation_bits=8)
    apply_policy(model, policy, specs, torch.randn(16, *DIGITS_SHAPE))
    assert all(b.device.type == "cuda" for b in model.buffers())
    F.cross_entropy(model(torch.randn(8, *DIGITS_SHAPE, device=device)), torch.zeros(8, dtype=torch.long, device=device)).backward()
