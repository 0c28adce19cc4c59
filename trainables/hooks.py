"""One observing forward pass: eval mode, no gradients, hooks removed and mode restored after."""

from __future__ import annotations

import torch
from torch import nn


def observe_forward(model: nn.Module, inputs: torch.Tensor, handles: list) -> None:
    """Run ``model(inputs)`` once for the hooks behind ``handles`` (removed afterwards, even on error)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
