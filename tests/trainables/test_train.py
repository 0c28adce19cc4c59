import math

import pytest
import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn

from trainables.data import load_dataset, to_tensors
from trainables.device import default_device, resolve_device, set_torch_threads
from trainables.models import create_model
from trainables.train import evaluate, fine_tune, random_crop_flip, train_epochs



@pytest.fixture(scope="module")
def digits():
    return to_tensors(load_dataset("digits", seed=0), "cpu")


def quiet(_line):
    pass


def fresh_mlp(digits, seed=0):
    torch.manual_seed(seed)
    return create_model("mlp", in_channels=1, num_classes=10, image_shape=digits.image_shape)


def test_evaluate_golden_values():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x = torch.eye(3)
    result = evaluate(model, x, torch.tensor([0, 1, 1]), batch_size=2)
    # logits are one-hot rows: log-softmax of the 1 is 1 - log(e + 2), of a 0 is -log(e + 2)
    correct, wrong = math.log(math.e + 2) - 1, math.log(math.e + 2)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["loss"] == pytest.approx((2 * correct + wrong) / 3)
    assert "correct" not in result
    per_example = evaluate(model, x, torch.tensor([0, 1, 1]), batch_size=2, per_example=True)
    assert per_example["correct"].tolist() == [True, True, False]  # across both batches, in order
    assert per_example["accuracy"] == result["accuracy"]


def test_evaluate_restores_mode_and_rejects_empty(digits):
    model = fresh_mlp(digits).train()
    evaluate(model, digits.val_x, digits.val_y)
    assert model.training
    model.eval()
    evaluate(model, digits.val_x, digits.val_y)
    assert not model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, digits.val_x[:0], digits.val_y[:0])


def test_fine_tune_learns_digits(digits):
    model = fresh_mlp(digits)
    before = evaluate(model, digits.val_x, digits.val_y)
    result = fine_tune(model, digits.train_x, digits.train_y, steps=150, batch_size=64, lr=0.05, seed=1)
    after = evaluate(model, digits.val_x, digits.val_y)
    assert before["accuracy"] < 0.3 and after["accuracy"] > 0.9
    assert result["loss"] < before["loss"] / 4 and result["steps"] == 150 and result["seconds"] > 0


def test_fine_tune_is_deterministic_per_seed(digits):
    runs = []
    for seed in (3, 3, 4):
        model = fresh_mlp(digits)
        fine_tune(model, digits.train_x, digits.train_y, steps=20, seed=seed)
        runs.append(model.fc1.weight.detach().clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


class FixedMask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight):
        return weight * self.mask


def test_fine_tune_through_parametrization(digits):
    model = fresh_mlp(digits)
    mask = (torch.rand_like(model.fc1.weight, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    parametrize.register_parametrization(model.fc1, "weight", FixedMask(mask))
    original_before = model.fc1.parametrizations.weight.original.detach().clone()
    fine_tune(model, digits.train_x, digits.train_y, steps=100, batch_size=64, lr=0.05)
    assert not torch.equal(model.fc1.parametrizations.weight.original, original_before)
    assert torch.all(model.fc1.weight[mask == 0] == 0)
    assert evaluate(model, digits.val_x, digits.val_y)["accuracy"] > 0.85


def test_cosine_schedule_and_logging(digits):
    lines = []
    fine_tune(fresh_mlp(digits), digits.train_x, digits.train_y, steps=10, lr=0.1, log_every=5, log=lines.append)
    assert len(lines) == 2
    assert "lr 0.05" in lines[0] and lines[1].endswith("lr 0")  # half-way down the cosine, then zero


def test_zero_steps_and_bad_arguments(digits):
    model = fresh_mlp(digits)
    before = model.fc1.weight.detach().clone()
    assert math.isnan(fine_tune(model, digits.train_x, digits.train_y, steps=0)["loss"])
    assert torch.equal(model.fc1.weight, before)
    with pytest.raises(ValueError, match="schedule='step'.*cosine.*constant"):
        fine_tune(model, digits.train_x, digits.train_y, steps=1, schedule="step")
    with pytest.raises(ValueError, match="steps=-1"):
        fine_tune(model, digits.train_x, digits.train_y, steps=-1)
    with pytest.raises(ValueError, match="batch_size=0"):
        fine_tune(model, digits.train_x, digits.train_y, steps=1, batch_size=0)


def test_random_crop_flip_is_a_shifted_window():
    generator = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 2 * 6 * 6, dtype=torch.float32).reshape(2, 2, 6, 6) + 1
    out = random_crop_flip(images, generator, padding=2)
    padded = nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        candidates = windows + [w.flip(2) for w in windows]
        assert any(torch.equal(out[i], w) for w in candidates)
    flips = random_crop_flip(images.repeat(50, 1, 1, 1), generator, padding=0)
    flipped = sum(torch.equal(flips[i], images[i % 2].flip(2)) for i in range(100))
    assert 30 < flipped < 70  # about half


def test_train_epochs_logs_each_epoch(digits):
    lines = []
    result = train_epochs(fresh_mlp(digits), digits, epochs=3, batch_size=64, lr=0.05, log=lines.append)
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3") and "val accuracy" in lines[0]
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert result["val_accuracy"] > 0.85


def test_device_helpers(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu") and default_device().type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device='gpu0'.*'cpu'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert set_torch_threads() == 1 and torch.get_num_threads() == 1  # Ray's per-trial setting wins
    with pytest.raises(ValueError, match="num_threads=0"):
        set_torch_threads(0)


def test_label_smoothing_caps_the_confidence(digits):
    """Smoothing eps over 10 classes makes the best target probability 1 - eps + eps/10:
    trained with eps=0.3 the model stays near 0.73 on its own training images, without near 1."""
    confidence = {}
    for smoothing in (0.0, 0.3):
        model = fresh_mlp(digits)
        train_epochs(model, digits, epochs=15, batch_size=32, lr=0.05, label_smoothing=smoothing, log=quiet)
        with torch.no_grad():
            confidence[smoothing] = model(digits.train_x).softmax(1).max(1).values.mean().item()
        assert evaluate(model, digits.val_x, digits.val_y)["accuracy"] > 0.9
    assert confidence[0.0] > 0.95 and 0.6 < confidence[0.3] < 0.8


def test_warmup_raises_then_lowers_the_lr(digits):
    """Warmup over the first half (one-cycle): the lr climbs to its peak at mid-run, then falls
    to ~0; the plain cosine only falls. Both train the MLP."""
    warm = train_epochs(fresh_mlp(digits), digits, epochs=6, batch_size=64, lr=0.05, warmup_fraction=0.5,
                        log=quiet)
    plain = train_epochs(fresh_mlp(digits), digits, epochs=6, batch_size=64, lr=0.05, log=quiet)
    warm_lrs, plain_lrs = [h["lr"] for h in warm["history"]], [h["lr"] for h in plain["history"]]
    assert warm_lrs[0] < warm_lrs[1] < warm_lrs[2] and warm_lrs[2] > warm_lrs[3] > warm_lrs[4] > warm_lrs[5]
    assert 0.045 < max(warm_lrs) <= 0.05 and warm_lrs[-1] < 1e-4
    assert all(a > b for a, b in zip(plain_lrs, plain_lrs[1:])) and plain_lrs[0] > warm_lrs[0]
    assert warm["val_accuracy"] > 0.9 and plain["val_accuracy"] > 0.9


@pytest.mark.parametrize("optimizer, lr, weight_decay", [("nesterov", 0.05, 5e-4), ("adamw", 0.003, 0.01)])
def test_other_optimizers_train(digits, optimizer, lr, weight_decay):
    """Each trains the MLP, and each is not plain SGD: the same run with "sgd" ends elsewhere."""
    weights = {}
    for name in (optimizer, "sgd"):
        model = fresh_mlp(digits)
        train_epochs(model, digits, epochs=4, batch_size=32, lr=lr, weight_decay=weight_decay, optimizer=name,
                     log=quiet)
        weights[name] = model.fc1.weight.detach()
        if name == optimizer:
            assert evaluate(model, digits.val_x, digits.val_y)["accuracy"] > 0.9
    assert not torch.allclose(weights[optimizer], weights["sgd"], atol=1e-4)


def test_train_epochs_rejects_bad_options(digits):
    with pytest.raises(ValueError, match="optimizer='adam'.*adamw"):
        train_epochs(fresh_mlp(digits), digits, epochs=1, batch_size=32, lr=0.1, optimizer="adam", log=quiet)
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        train_epochs(fresh_mlp(digits), digits, epochs=1, batch_size=32, lr=0.1, label_smoothing=1.0, log=quiet)
