"""Knowledge distillation from the float model into its compressed copy (Hinton et al. 2015).

The loss mixes cross-entropy on the labels with KL(teacher || student) on the logits
softened by a temperature T, times T^2 so that the soft term's gradients keep their scale
as T changes: loss = (1 - alpha) CE + alpha T^2 KL. Mixing with CE matters: naive KD can
hurt a very small student (DESIGN.md "Distillation").

The teacher's logits are computed once per run over the whole training split
(``teacher_logits``), row-aligned with it, so a minibatch's indices pick the student's
inputs and the teacher's rows alike and every trial shares one tensor.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from hardware.checks import check_positive, check_probability


def check_distillation(temperature: float, weight: float) -> None:
    """T > 0 and finite, 0 <= alpha <= 1, else a ValueError naming the bad value."""
    check_positive("distill_temperature", temperature)
    check_probability("distill_weight", weight)  # 0: cross-entropy only, 1: KL only


def distillation_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, *,
                      temperature: float, weight: float) -> torch.Tensor:
    """(1 - weight) x cross-entropy + weight x T^2 x KL(softmax(teacher/T) || softmax(student/T)),
    both terms the mean over the batch."""
    cross_entropy = F.cross_entropy(student_logits, labels)
    if weight == 0:
        return cross_entropy
    kl = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                  F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
    return (1.0 - weight) * cross_entropy + weight * temperature**2 * kl


def teacher_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """The (float) model's logits for every row of ``x``, in eval mode, without gradients;
    restores the model's mode. One row per example, aligned with ``x``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(chunk) for chunk in x.split(batch_size)])
    finally:
        model.train(was_training)
