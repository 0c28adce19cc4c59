"""Plain training and evaluation loops over tensors that already sit on the device.

Minibatches are index slices of whole-dataset tensors drawn with a seeded
``torch.Generator`` (no DataLoader: on a GPU the data never leaves GPU memory, on a CPU
there are no worker processes). Losses are accumulated on the device and read once at the
end so that a GPU is not synchronized every step. The loops only use
``model.parameters()``, so they work unchanged on models whose weights carry
``torch.nn.utils.parametrize`` transforms (masks, fake quantization).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from hardware.checks import check_int, check_number, check_positive

from .data import TensorSplits
from .distill import check_distillation, distillation_loss
from .quantize import step_size_parameters

SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("sgd", "nesterov", "adamw")  # pretraining's choices; fine_tune always uses SGD
TAIL_FRACTION = 0.1  # fine_tune reports the mean loss of its last 10% of steps
# lr of the learned quantizer step sizes (LSQ): their gradients are already scaled by
# 1/sqrt(N Q_p), so they need a higher lr than the weights to move within a short fine-tune.
DEFAULT_SCALE_LR = 0.05


def batch_indices(n: int, batch_size: int, generator: torch.Generator, device) -> Iterator[torch.Tensor]:
    """Endless minibatches of indices: a fresh seeded permutation per pass over the data."""
    while True:
        order = torch.randperm(n, generator=generator, device=device)
        yield from order.split(batch_size)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch tensor: zero-pad, crop back at a random
    offset per image, and flip half of the images left-right."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=images.device)
    rows = (dy + torch.arange(height, device=images.device))[:, :, None]
    cols = (dx + torch.arange(width, device=images.device))[:, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None]
    cropped = padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indexing puts C last
    flip = torch.rand(n, generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped).contiguous()


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")


def _optimizer_and_schedule(model: nn.Module, *, total_steps: int, lr: float, momentum: float,
                            weight_decay: float, schedule: str, scale_lr: float | None = None):
    """SGD over the model's parameters; with ``scale_lr`` the learned quantizer step sizes
    get their own group at that lr and without weight decay (decay would shrink the grids)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; valid choices: {list(SCHEDULES)}")
    check_positive("lr", lr)
    scales = step_size_parameters(model) if scale_lr is not None else []
    if scales:
        check_number("scale_lr", scale_lr, minimum=0.0)  # 0 freezes the quantizer scales
    scale_ids = {id(p) for p in scales}
    groups = [{"params": [p for p in model.parameters() if id(p) not in scale_ids]}]
    if scales:
        groups.append({"params": scales, "lr": scale_lr, "weight_decay": 0.0})
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = None
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return optimizer, scheduler


def check_pretrain_options(*, epochs: int, batch_size: int, optimizer: str, lr: float, warmup_fraction: float,
                           label_smoothing: float, crop_padding: int) -> None:
    """Validate ``train_epochs``'s options in one place; ``pretrain.Recipe`` calls this at
    construction so that a bad recipe fails before any data is loaded."""
    _check_positive(epochs=epochs, batch_size=batch_size)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}; valid choices: {list(OPTIMIZERS)}")
    check_positive("lr", lr)
    for name, value in (("warmup_fraction", warmup_fraction), ("label_smoothing", label_smoothing)):
        check_number(name, value, minimum=0.0, below=1.0)
    check_int("crop_padding", crop_padding, minimum=0)


def _pretrain_optimizer(model: nn.Module, *, optimizer: str, lr: float, momentum: float,
                        weight_decay: float) -> torch.optim.Optimizer:
    """The pretraining optimizer by name. AdamW's weight decay is decoupled (a fraction of the
    weight per step, scaled by lr), so its useful values are ~100x SGD's L2 coefficient."""
    if optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=optimizer == "nesterov")


def _warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_fraction: float):
    """Cosine decay over all steps, or, with a warmup, torch's one-cycle schedule: a cosine
    ramp from lr/25 up to lr over the first ``warmup_fraction`` of the steps, then cosine
    down to ~0. Momentum is left alone (one-cycle's momentum cycling would also move Adam's beta1)."""
    if warmup_fraction == 0.0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                               total_steps=max(total_steps, 2), pct_start=warmup_fraction,
                                               anneal_strategy="cos", cycle_momentum=False)


def _train_step(model, optimizer, scheduler, images, labels, loss_fn=None, index=None,
                label_smoothing: float = 0.0) -> torch.Tensor:
    logits = model(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing) if loss_fn is None \
        else loss_fn(logits, labels, index)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


def _distillation(teacher_logits, x, temperature, weight):
    """The per-minibatch loss (logits, labels, index) -> loss, or None for plain CE."""
    if teacher_logits is None:
        return None
    check_distillation(temperature, weight)
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() != 2 or len(teacher_logits) != len(x):
        shape = tuple(teacher_logits.shape) if isinstance(teacher_logits, torch.Tensor) else type(teacher_logits)
        raise ValueError(f"teacher_logits must be a (len(x)={len(x)}, classes) tensor, one row per training "
                         f"example (trainables.distill.teacher_logits); got {shape}")
    teacher = teacher_logits.to(x.device)
    return lambda logits, labels, index: distillation_loss(logits, labels, teacher[index], temperature=temperature,
                                                           weight=weight)


def fine_tune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch_size: int = 128,
              lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4, seed: int = 0,
              schedule: str = "cosine", scale_lr: float = DEFAULT_SCALE_LR, teacher_logits: torch.Tensor | None = None,
              distill_temperature: float = 4.0, distill_weight: float = 0.5, log_every: int = 0,
              log: Callable[[str], None] = print) -> dict:
    """SGD with momentum for ``steps`` minibatches; returns the mean loss of the last ~10% of
    steps, the steps run and the seconds taken. ``steps=0`` trains nothing (loss is NaN).

    Quantizer step sizes train at ``scale_lr`` without weight decay. With ``teacher_logits``
    (row-aligned with ``x``) the loss is ``distill.distillation_loss`` at
    ``distill_temperature`` / ``distill_weight``. Common random numbers: the minibatch order
    depends only on ``seed`` and ``len(y)``, and the global torch RNG (dropout, ...) is
    seeded with ``seed`` for the run and restored afterwards, so two policies fine-tuned
    with one seed see the same batches and the same random masks."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r} must be a non-negative integer")
    _check_positive(batch_size=batch_size)
    loss_fn = _distillation(teacher_logits, x, distill_temperature, distill_weight)
    optimizer, scheduler = _optimizer_and_schedule(model, total_steps=steps, lr=lr, momentum=momentum,
                                                   weight_decay=weight_decay, schedule=schedule, scale_lr=scale_lr)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    tail_start = steps - max(1, math.ceil(TAIL_FRACTION * steps))
    tail_loss = torch.zeros((), device=x.device)
    was_training, start = model.training, time.perf_counter()
    model.train()
    with torch.random.fork_rng(devices=[x.device] if x.device.type != "cpu" else [], device_type=x.device.type):
        torch.manual_seed(seed)
        try:
            batches = batch_indices(len(y), batch_size, generator, x.device)
            for step in range(steps):
                index = next(batches)
                loss = _train_step(model, optimizer, scheduler, x[index], y[index], loss_fn, index)
                if step >= tail_start:
                    tail_loss += loss
                if log_every and (step + 1) % log_every == 0:
                    log(f"step {step + 1}/{steps} loss {loss.item():.4f} lr {optimizer.param_groups[0]['lr']:.4g}")
        finally:
            model.train(was_training)
    mean_loss = (tail_loss / (steps - tail_start)).item() if steps else float("nan")
    return {"loss": mean_loss, "steps": steps, "seconds": time.perf_counter() - start}


# evaluate's batch when none is given: big batches keep a GPU busy; on a CPU a batch whose
# activations stay in cache is faster (LeNet-5, 6,000 validation images, one thread: 1.17 s at
# 256 against 2.05 s at 2048), and every trial scores the validation split once.
EVAL_BATCH = {"cuda": 2048, "cpu": 256}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None,
             per_example: bool = False) -> dict:
    """Accuracy and mean cross-entropy in eval mode; restores the model's previous mode.
    ``batch_size`` defaults to ``EVAL_BATCH`` for the data's device. With ``per_example`` the
    result also holds "correct": a bool tensor, one entry per example, True where it is classified right.

    Uses ``torch.no_grad`` rather than ``inference_mode``: parametrized weights computed
    under inference mode cannot be reused by autograd afterwards."""
    if len(y) == 0:
        raise ValueError("evaluate needs at least one example (got an empty split)")
    if batch_size is None:
        batch_size = EVAL_BATCH.get(x.device.type, EVAL_BATCH["cuda"])
    _check_positive(batch_size=batch_size)
    was_training = model.training
    model.eval()
    correct = []
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    try:
        with torch.no_grad():
            for images, labels in zip(x.split(batch_size), y.split(batch_size)):
                logits = model(images)
                total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
                correct.append(logits.argmax(1) == labels)
    finally:
        model.train(was_training)
    correct = torch.cat(correct)
    result = {"accuracy": correct.sum().item() / len(y), "loss": total_loss.item() / len(y)}
    if per_example:
        result["correct"] = correct
    return result


def train_epochs(model: nn.Module, splits: TensorSplits, *, epochs: int, batch_size: int, lr: float,
                 momentum: float = 0.9, weight_decay: float = 5e-4, seed: int = 0, augment: bool = False,
                 optimizer: str = "sgd", warmup_fraction: float = 0.0, label_smoothing: float = 0.0,
                 crop_padding: int = 4, log: Callable[[str], None] = print) -> dict:
    """Pretraining: ``epochs`` passes over the training split, the learning rate following a
    cosine over all steps (after a warmup when ``warmup_fraction`` > 0), one progress line
    per epoch (train loss, validation accuracy, seconds). ``label_smoothing`` softens the
    cross-entropy targets; ``augment`` crops with ``crop_padding`` and flips."""
    check_pretrain_options(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, warmup_fraction=warmup_fraction,
                           label_smoothing=label_smoothing, crop_padding=crop_padding)
    steps_per_epoch = math.ceil(len(splits.train_y) / batch_size)
    opt = _pretrain_optimizer(model, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = _warmup_cosine(opt, total_steps=epochs * steps_per_epoch, warmup_fraction=warmup_fraction)
    generator = torch.Generator(device=splits.train_x.device).manual_seed(seed)
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_loss = torch.zeros((), device=splits.train_x.device)
        order = torch.randperm(len(splits.train_y), generator=generator, device=splits.train_x.device)
        for index in order.split(batch_size):
            images = splits.train_x[index]
            if augment:
                images = random_crop_flip(images, generator, padding=crop_padding)
            epoch_loss += _train_step(model, opt, scheduler, images, splits.train_y[index],
                                      label_smoothing=label_smoothing)
        val = evaluate(model, splits.val_x, splits.val_y)
        record = {"epoch": epoch, "train_loss": epoch_loss.item() / steps_per_epoch,
                  "val_accuracy": val["accuracy"], "lr": opt.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - start}
        history.append(record)
        log(f"epoch {epoch}/{epochs}  train loss {record['train_loss']:.4f}  "
            f"val accuracy {record['val_accuracy']:.4f}  lr {record['lr']:.3g}  {record['seconds']:.1f} s")
    return {"history": history, "val_accuracy": history[-1]["val_accuracy"],
            "seconds": time.perf_counter() - start}
