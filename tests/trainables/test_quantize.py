"""Quantizer quality: MSE grids against brute force, LSQ's step gradient against finite
differences, distillation by hand, common random numbers, and a real low-bit fine-tune."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hardware.policy import Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy
from trainables.data import load_dataset, to_tensors
from trainables.distill import distillation_loss, teacher_logits
from trainables.models import create_model
from trainables.policy_trial import TrialSettings, evaluate_policy
from trainables.quantize import InputQuantizer, WeightTransform, step_size_parameters
from trainables.scale_search import CLIP_RATIOS, mse_input_range
from trainables.train import evaluate, fine_tune

RATIOS = CLIP_RATIOS.numpy()


@pytest.fixture(scope="module")
def digits():
    return to_tensors(load_dataset("digits", seed=0), "cpu")


def numpy_weight_scales(rows: np.ndarray, low: int, high: int) -> np.ndarray:
    """Brute force, one channel and one candidate at a time: least squared error over
    ratio x max|w| / high, first (smallest) ratio on ties."""
    best = []
    for row in rows:
        errors = []
        for ratio in RATIOS:
            scale = max(ratio * np.abs(row).max() / high, 1e-12)
            errors.append(((np.clip(np.round(row / scale), low, high) * scale - row) ** 2).sum())
        best.append(max(RATIOS[int(np.argmin(errors))] * np.abs(row).max() / high, 1e-12))
    return np.array(best)


def weight_error(weight: torch.Tensor, transform: WeightTransform) -> float:
    with torch.no_grad():
        return float(((transform(weight) - weight) ** 2).sum())


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_mse_clip_equals_brute_force_and_beats_max_abs(bits, distribution):
    rng = np.random.default_rng(bits)
    values = rng.normal(size=(12, 3, 5, 5)) if distribution == "gaussian" else rng.laplace(size=(12, 3, 5, 5))
    weight = torch.from_numpy(values * rng.uniform(0.1, 2.0, size=(12, 1, 1, 1)))  # float64: same arithmetic
    transform = WeightTransform(weight, None, bits)
    expected = numpy_weight_scales(weight.numpy().reshape(12, -1),
                                   -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    np.testing.assert_allclose(transform.channel_scales().numpy(), expected, rtol=1e-12)
    max_abs = WeightTransform(weight, None, bits, scale_init="max")
    assert weight_error(weight, transform) < 0.9 * weight_error(weight, max_abs)


def test_mse_clip_keeps_pruned_weights_zero():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 20, generator=generator)
    mask = (torch.rand(6, 20, generator=generator) < 0.5).float()
    mask[2] = 0  # a whole pruned channel
    quantized = WeightTransform(weight, mask, 2)(weight)
    assert torch.all(quantized[mask == 0] == 0)


def numpy_input_range(values: np.ndarray, bits: int) -> tuple[float, float]:
    low, high = min(values.min(), 0.0), max(values.max(), 0.0)
    top = 2**bits - 1
    errors = []
    for ratio in RATIOS:
        scale = (ratio * high - ratio * low) / top
        zero_point = min(max(round(-ratio * low / scale), 0), top)
        quantized = np.clip(np.round(values * (1.0 / scale)), -zero_point, top - zero_point) * scale
        errors.append(((quantized - values) ** 2).sum())
    best = RATIOS[int(np.argmin(errors))]
    return best * low, best * high


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("shift", [0.0, -0.7])
def test_activation_range_search_equals_brute_force(bits, shift):
    rng = np.random.default_rng(bits)
    values = np.maximum(rng.normal(size=(32, 4, 6, 6)) + shift, shift) + rng.exponential(size=(32, 4, 6, 6)) * 0.1
    low, high = mse_input_range(torch.from_numpy(values), bits)
    expected = numpy_input_range(values, bits)
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    if bits == 2:
        assert high < values.max()  # something was clipped: the search did not just return min/max


def lsq_reference(values, scale, upstream, low, high, reduce_dims, loss):
    """LSQ's step gradient without its factor, built from a central difference: away from
    rounding boundaries d/ds [s round(x/s)] is round(x/s) (the finite difference sees
    that), and LSQ adds the straight-through term -x/s for values inside the range."""
    step = 1e-7
    numeric = (loss(step) - loss(-step)) / (2 * step)
    inside = ((values / scale) > low - 0.5) & ((values / scale) < high + 0.5)
    return numeric - (upstream * values / scale * inside).sum(dim=reduce_dims)


def test_lsq_step_gradient_matches_finite_differences():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, 3, 3, generator=generator, dtype=torch.float64)
    transform = WeightTransform(weight, None, 3).double()  # range [-4, 3]
    upstream = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
    (transform(weight) * upstream).sum().backward()
    factor = 1 / math.sqrt(27 * 3)  # N = weights per channel, Q_p = 3
    for channel in range(4):
        def loss(delta):
            with torch.no_grad():
                transform.scale[channel] += delta
                value = float((transform(weight) * upstream).sum())
                transform.scale[channel] -= delta
            return value

        scale = transform.scale.detach()[channel]
        expected = lsq_reference(weight[channel], scale, upstream[channel], -4, 3, (0, 1, 2), loss)
        assert transform.scale.grad.reshape(-1)[channel].item() == pytest.approx(factor * float(expected), rel=1e-6)

    quantizer = InputQuantizer(3, -0.5, 2.0).double()  # zero point 1: grid k in [-1, 6]
    assert int(quantizer.zero_point) == 1
    inputs = torch.randn(5, 2, 4, 4, generator=generator, dtype=torch.float64) * 2 + 0.5  # some clipped
    inputs.requires_grad_()  # a hidden layer's input: the data's own quantizer keeps its scale
    upstream = torch.randn(inputs.shape, generator=generator, dtype=torch.float64)
    (quantizer(inputs) * upstream).sum().backward()

    def input_loss(delta):
        with torch.no_grad():
            quantizer.scale += delta
            value = float((quantizer(inputs) * upstream).sum())
            quantizer.scale -= delta
        return value

    expected = lsq_reference(inputs.detach(), quantizer.scale.detach(), upstream, -1, 6, (0, 1, 2, 3), input_loss)
    factor = 1 / math.sqrt(2 * 4 * 4 * 6)  # N: one sample's elements (not the batch); Q_p = 7 - 1
    assert quantizer.scale.grad.item() == pytest.approx(factor * float(expected), rel=1e-6)


def test_distillation_loss_hand_computed():
    student, teacher = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[2.0, 0.0, 0.0]])
    labels = torch.tensor([1])
    temperature, weight = 2.0, 0.25
    p = np.exp([1.0, 0.0, 0.0]) / np.exp([1.0, 0.0, 0.0]).sum()  # teacher at T = 2
    q = np.exp([0.5, 0.0, -0.5]) / np.exp([0.5, 0.0, -0.5]).sum()  # student at T = 2
    kl = float((p * np.log(p / q)).sum())
    cross_entropy = -math.log(math.exp(0.0) / (math.exp(1.0) + 1 + math.exp(-1.0)))
    expected = 0.75 * cross_entropy + 0.25 * 4 * kl
    got = distillation_loss(student, labels, teacher, temperature=temperature, weight=weight)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    plain = distillation_loss(student, labels, teacher, temperature=temperature, weight=0.0)
    assert plain.item() == pytest.approx(F.cross_entropy(student, labels).item())


@pytest.mark.parametrize("kw,message", [({"distill_temperature": 0.0}, "distill_temperature=0.0"),
                                        ({"distill_weight": 1.5}, r"distill_weight=1.5 must be a finite number in \[0, 1\]"),
                                        ({"scale_lr": -1.0}, "scale_lr=-1.0"),
                                        ({"teacher_rows": 5}, "one row per training example")])
def test_fine_tune_rejects_bad_distillation_and_scale_settings(digits, kw, message):
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    specs = profile_model(model, digits.image_shape)
    apply_policy(model, Policy.uniform([s.name for s in specs], weight_bits=4), specs, digits.train_x[:64])
    rows = kw.pop("teacher_rows", len(digits.train_x))
    with pytest.raises(ValueError, match=message):
        fine_tune(model, digits.train_x, digits.train_y, steps=1, teacher_logits=torch.zeros(rows, 10), **kw)


class DropoutNet(nn.Module):
    """A small MLP with dropout (masks from torch's global RNG) on pre-activations, which are
    never exactly zero, so the zeros of its output are the dropped units."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten, self.fc1, self.drop, self.fc2 = nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.drop(self.fc1(self.flatten(x)))))


def recorded_fine_tune(digits, policy_kw: dict, *, global_draws: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fine-tune under ``policy_kw`` and return each step's (input batch, dropout mask)."""
    torch.manual_seed(0)
    model = DropoutNet()
    specs = profile_model(model, digits.image_shape)
    apply_policy(model, Policy.uniform([s.name for s in specs], **policy_kw), specs, digits.train_x[:64])
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append([args[0].clone()]))
    model.drop.register_forward_hook(lambda _m, _args, out: seen[-1].append(out == 0))
    torch.rand(global_draws)  # the caller's global RNG differs between the two trials
    fine_tune(model, digits.train_x, digits.train_y, steps=12, batch_size=32, seed=5)
    return seen


def test_common_random_numbers_across_policies(digits):
    first = recorded_fine_tune(digits, {"weight_bits": 2, "activation_bits": 2, "sparsity": 0.5}, global_draws=1)
    second = recorded_fine_tune(digits, {"weight_bits": 8, "activation_bits": 4, "sparsity": 0.8}, global_draws=7)
    assert len(first) == len(second) == 12
    for (batch_a, mask_a), (batch_b, mask_b) in zip(first, second):
        assert torch.equal(batch_a, batch_b)  # the same minibatch indices
        assert torch.equal(mask_a, mask_b)  # the same dropout masks
    model = DropoutNet()
    state = torch.random.get_rng_state()
    fine_tune(model, digits.train_x, digits.train_y, steps=2, batch_size=32, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's global RNG is restored


def test_learned_scales_train_and_travel_in_the_state_dict(digits):
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    specs = profile_model(model, digits.image_shape)
    policy = Policy.uniform([s.name for s in specs], weight_bits=3, activation_bits=3)
    apply_policy(model, policy, specs, digits.train_x[:128])
    initial = [p.detach().clone() for p in step_size_parameters(model)]
    assert len(initial) == 2 * len(specs)
    fine_tune(model, digits.train_x, digits.train_y, steps=20, batch_size=32, seed=0)
    learned = step_size_parameters(model)
    first_input = model.get_submodule(specs[0].name).input_quantizer.scale
    changed = [not torch.equal(a, b) for a, b in zip(initial, learned)]
    # every scale learned but the one on the data itself, which keeps its calibrated range
    assert changed == [p is not first_input for p in learned]
    keys = [k for k in model.state_dict() if k.endswith(".scale")]
    assert len(keys) == 2 * len(specs)
    rebuilt = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    apply_policy(rebuilt, policy, specs, digits.train_x[200:300])
    rebuilt.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(step_size_parameters(rebuilt), learned))


def test_w2a2_fine_tune_beats_max_abs_on_digits(digits):
    """Measured on this MLP (seeds 0-2, 200 steps): W2A2 max-abs 93.8-95.1 %, MSE + LSQ
    97.9-99.3 %; at W3A3 the two were within a point either way, so only W2A2 is asserted."""
    torch.manual_seed(0)
    base = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    fine_tune(base, digits.train_x, digits.train_y, steps=300, batch_size=64, lr=0.05, seed=0)
    accuracy = {}
    for scale_init, scale_lr in (("max", 0.0), ("mse", 0.05)):
        model = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
        model.load_state_dict(base.state_dict())
        specs = profile_model(model, digits.image_shape)
        policy = Policy.uniform([s.name for s in specs], weight_bits=2, activation_bits=2)
        apply_policy(model, policy, specs, digits.train_x[:256], scale_init=scale_init)
        fine_tune(model, digits.train_x, digits.train_y, steps=200, batch_size=64, lr=0.05, seed=0, scale_lr=scale_lr)
        accuracy[scale_init] = evaluate(model, digits.val_x, digits.val_y)["accuracy"]
    assert accuracy["mse"] > accuracy["max"] + 0.02


def test_teacher_logits_are_row_aligned_and_distillation_trains(digits):
    torch.manual_seed(0)
    teacher = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape).train()
    logits = teacher_logits(teacher, digits.train_x, batch_size=100)
    assert teacher.training and logits.shape == (len(digits.train_x), 10) and not logits.requires_grad
    torch.testing.assert_close(logits[123], teacher.eval()(digits.train_x[123:124])[0].detach())
    student = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    result = fine_tune(student, digits.train_x, digits.train_y, steps=5, teacher_logits=logits, distill_weight=1.0)
    assert math.isfinite(result["loss"])


def trial_settings(**kw) -> TrialSettings:
    return TrialSettings(model_ref={"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 10, "image_shape": [1, 8, 8]}, target="bitserial", budget_metric="bops",
                         budget_limit=1e12, fine_tune_steps=10, final_steps=10, batch_size=32, lr=0.05, seed=0, **kw)


def test_evaluate_policy_distils_when_given_a_teacher(digits):
    torch.manual_seed(0)
    base = create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)
    specs = profile_model(base, digits.image_shape)
    policy = Policy.uniform([s.name for s in specs], weight_bits=3, activation_bits=3)
    logits = teacher_logits(base, digits.train_x)
    run = lambda settings, teacher: evaluate_policy(policy, splits=digits, base_state=base.state_dict(), specs=specs,
                                                    settings=settings, final=False, teacher_logits=teacher)
    plain = run(trial_settings(), None)
    assert run(trial_settings(), logits)["loss"] == plain["loss"]  # distill_weight 0: the teacher is unused
    distilled = run(trial_settings(distill_weight=0.5, distill_temperature=2.0), logits)
    assert distilled["loss"] != plain["loss"] and math.isfinite(distilled["train_loss"])


@pytest.mark.parametrize("kw,message", [({"distill_temperature": -1.0}, "distill_temperature=-1.0"),
                                        ({"distill_weight": -0.1}, "distill_weight=-0.1"),
                                        ({"scale_lr": float("nan")}, "scale_lr=nan")])
def test_trial_settings_reject_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        trial_settings(**kw)


def test_broadcast_path_matches_the_cpu_fast_path():
    """The per-tensor CPU fast path and the broadcasting path (per channel; per tensor on a
    GPU) give the same values and gradients for one grid."""
    from trainables.quantize import _LearnedStepQuantize

    generator = torch.Generator().manual_seed(3)
    inputs = (torch.randn(8, 3, 5, 5, generator=generator) * 2).requires_grad_()
    upstream = torch.randn(inputs.shape, generator=generator)
    results = []
    for shape in ((), (1, 1, 1, 1)):
        values = inputs.detach().clone().requires_grad_()
        scale = torch.full(shape, 0.3, requires_grad=True)
        output = _LearnedStepQuantize.apply(values, scale, -2, 5, 0.1)
        output.backward(upstream)
        results.append((output.detach(), values.grad, scale.grad.reshape(())))
    (out_a, grad_a, scale_a), (out_b, grad_b, scale_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b)
    assert 0 < int((grad_a == 0).sum()) < grad_a.numel()  # some values were clipped
    torch.testing.assert_close(scale_a, scale_b, rtol=1e-5, atol=1e-6)
