"""The model zoo: a plain registry of constructors and ``create_model``.

Every constructor takes ``in_channels``, ``num_classes`` and ``image_shape`` (C, H, W) so
the same call works for any dataset; a model that cannot take the image size says so at
construction. Prunable layers are ``nn.Conv2d`` / ``nn.Linear`` with stable names (from
``named_modules``) that compression policies refer to.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _check_image_shape(model: str, in_channels: int, image_shape) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{model}: image_shape={image_shape!r} must be (channels, height, width)")
    if shape[0] != in_channels:
        raise ValueError(f"{model}: image_shape {shape} has {shape[0]} channels but in_channels={in_channels}")
    return shape


class LeNet5(nn.Module):
    """Caffe's LeNet-5 as used by Yang et al. (CVPR 2020): conv 20@5x5, pool, conv 50@5x5,
    pool, fc 500, fc classes. ReLU after each conv (Caffe has none there) speeds up training;
    on 28x28 inputs: 430,500 weights and 2,293,000 MACs."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_shape=(1, 28, 28)) -> None:
        super().__init__()
        _, height, width = _check_image_shape("lenet5", in_channels, image_shape)
        out_h, out_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        if out_h < 1 or out_w < 1:
            raise ValueError(f"lenet5: image {height}x{width} is too small (two 5x5 convs and two 2x2 pools "
                             "need at least 16x16); use a bigger dataset or the 'mlp' model")
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(50 * out_h * out_w, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; the shortcut is a 1x1 conv + BN projection ("option B")
    when the block changes resolution or width, otherwise the identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20 (He et al. 2016): a 3x3 stem and 3 stages of 3 basic blocks with
    16/32/64 channels, global average pooling and a linear classifier."""

    stage_widths = (16, 32, 64)
    blocks_per_stage = 3

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, image_shape=(3, 32, 32)) -> None:
        super().__init__()
        _, height, width = _check_image_shape("resnet20", in_channels, image_shape)
        if min(height, width) < 4:
            raise ValueError(f"resnet20: image {height}x{width} is too small (two stride-2 stages need >= 4x4)")
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, channels = [], 16
        for index, stage_width in enumerate(self.stage_widths):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(channels if b == 0 else stage_width, stage_width, stride if b == 0 else 1)
                      for b in range(self.blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
            channels = stage_width
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MLP(nn.Module):
    """A small multilayer perceptron for tests and tiny datasets (flatten, fc1, fc2, fc3)."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_shape=(1, 8, 8),
                 hidden=(64, 32)) -> None:
        super().__init__()
        channels, height, width = _check_image_shape("mlp", in_channels, image_shape)
        sizes = [channels * height * width, *hidden]
        self.fc1 = nn.Linear(sizes[0], sizes[1])
        self.fc2 = nn.Linear(sizes[1], sizes[2])
        self.fc3 = nn.Linear(sizes[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


MODELS: dict[str, Callable[..., nn.Module]] = {"lenet5": LeNet5, "resnet20": ResNet20, "mlp": MLP}


def create_model(name: str, *, in_channels: int, num_classes: int, image_shape) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {sorted(MODELS)}")
    for what, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {what}={value!r} must be a positive integer")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, image_shape=image_shape)
