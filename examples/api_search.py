"""evo from Python on a model and data of your own: the model class lives in this script (evo pickles
it for the Ray workers), the data are arrays; then the chosen policy is exported and reloaded.

    python examples/api_search.py [data.npz]     # default: a Fashion-MNIST subset (examples/make_npz.py)

A few minutes on 2 CPU cores (needs the npz first: python examples/make_npz.py examples/fashion-small.npz).
"""

import sys

import numpy as np
import torch
from torch import nn

import evo


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "examples/fashion-small.npz"
    arrays = dict(np.load(path))  # x_train, y_train, x_test, y_test (uint8 images are standardised by evo)
    print(evo.profile(SmallNet(), (1, 28, 28))["totals"]["macs"], "MACs")
    result = evo.search(SmallNet, arrays, budget="bops=1/64", name="api-example", population=6, generations=2,
                        fine_tune_steps=40, final_steps=200, pretrain_epochs=3)
    print("best policy within the budget (validation accuracy):", result.best_policy.to_dict()["layers"])
    exported = evo.export(result.run_dir, out=result.run_dir / "export")
    model = evo.load_compressed(exported["path"])
    print("reloaded:", type(model).__name__, "onnxruntime agreement", exported["agreement"])


if __name__ == "__main__":
    main()
