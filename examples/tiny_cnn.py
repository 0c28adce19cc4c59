"""A model of your own for evo, not in its zoo: a small MobileNetV2-style CNN for 28x28 grey images.

    evo search --model examples/tiny_cnn.py:build --model-args '{"width": 16}' --dataset data.npz ...

evo finds its Conv2d/Linear layers and, by tracing the graph (torch.fx), which of them must keep
the same channels under channel pruning: the residual add ties ``block.project`` to ``stem``,
and the depthwise conv follows ``block.expand``.
"""

import torch
from torch import nn


class InvertedResidual(nn.Module):
    """Pointwise expand, depthwise 3x3, pointwise project, added to the input (MobileNetV2)."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.expand_bn(self.expand(x)))
        out = torch.relu(self.depthwise_bn(self.depthwise(out)))
        return x + self.project_bn(self.project(out))


class TinyCNN(nn.Module):
    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False)  # 28x28 -> 14x14
        self.stem_bn = nn.BatchNorm2d(width)
        self.block = InvertedResidual(width)
        self.head = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)  # 14x14 -> 7x7
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.block(x)
        x = torch.relu(self.head(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(width: int = 16) -> nn.Module:
    """The factory evo calls (``--model examples/tiny_cnn.py:build``, keyword arguments from ``--model-args``)."""
    return TinyCNN(width=width)
