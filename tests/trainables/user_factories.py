"""A user's model factory and data loader, as a user would write them (loaded by the tests
both by file path, ``tests/trainables/user_factories.py:tiny_convnet``, and by module path,
``tests.trainables.user_factories:tiny_convnet``)."""

import numpy as np
from torch import nn


def tiny_convnet(width: int = 2, classes: int = 3) -> nn.Module:
    """conv(1 -> 4*width) + BN, global average pool, linear classifier, for 1 x 6 x 6 inputs."""
    return nn.Sequential(nn.Conv2d(1, 4 * width, 3, padding=1, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes))


def conv_bn_chain(width: int = 8) -> nn.Module:
    """Two conv + BN + ReLU stages (the first conv without a bias, the second with one), global
    average pool, linear classifier, for 1 x 6 x 6 inputs: no residual, so channel pruning
    exports with both norms folded."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 3))


def failing_factory(**kwargs) -> nn.Module:
    raise RuntimeError("out of widgets")


def not_a_module() -> dict:
    return {"conv": "no"}


def no_layers() -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Flatten())


NOT_CALLABLE = 3


def tiny_arrays() -> dict:
    """60 training and 20 test images of 6 x 6, uint8, three classes (the data loader form)."""
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (60, 6, 6), dtype=np.uint8), "y_train": np.arange(60) % 3,
            "x_test": rng.integers(0, 256, (20, 6, 6), dtype=np.uint8), "y_test": np.arange(20) % 3}

