"""Validation accuracy of LeNet-5 on Fashion-MNIST after a short compressed fine-tune.

Uniform W3A3 at 80% and W2A2 at 50% unstructured sparsity, fine-tuned 80 and 500 steps from
the cached 3-epoch base (``trainables.pretrain``), with and without distillation from the
float base (T = 4, half of the loss) when the code supports it. One seed; read differences
of a few tenths as noise (the README's screen-noise figures: 0.16-0.39 points over 5 seeds).

    python benchmarks/quantizer_accuracy.py [--steps 80,500] [--distill]
"""

from __future__ import annotations

import argparse
import inspect

import torch

from hardware.policy import Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy
from trainables.data import load_dataset, to_tensors
from trainables.models import create_model
from trainables.pretrain import pretrain
from trainables.train import evaluate, fine_tune

POLICIES = {"W3A3 s0.8": dict(weight_bits=3, activation_bits=3, sparsity=0.8),
            "W2A2 s0.5": dict(weight_bits=2, activation_bits=2, sparsity=0.5)}
SHAPE = (1, 28, 28)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="80,500")
    parser.add_argument("--distill", action="store_true", help="also fine-tune with distillation")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = pretrain("lenet5", "fashion-mnist")
    splits = to_tensors(load_dataset("fashion-mnist", seed=0, val_fraction=0.1))
    teacher = None
    if args.distill:
        from trainables.distill import teacher_logits
        float_model = create_model("lenet5", in_channels=1, num_classes=10, image_shape=SHAPE)
        float_model.load_state_dict(base.state_dict)
        teacher = teacher_logits(float_model, splits.train_x, batch_size=2048)
    print(f"base val accuracy {base.val_accuracy:.4f}; has distill: {'teacher_logits' in inspect.signature(fine_tune).parameters}")
    for label, kw in POLICIES.items():
        for steps in [int(s) for s in args.steps.split(",")]:
            for use_teacher in ([None, teacher] if teacher is not None else [None]):
                torch.manual_seed(0)
                model = create_model("lenet5", in_channels=1, num_classes=10, image_shape=SHAPE)
                model.load_state_dict(base.state_dict)
                specs = profile_model(model, SHAPE)
                apply_policy(model, Policy.uniform([s.name for s in specs], **kw), specs, splits.train_x[:512])
                before = evaluate(model, splits.val_x, splits.val_y)["accuracy"]
                extra = {} if use_teacher is None else {"teacher_logits": use_teacher}
                fine_tune(model, splits.train_x, splits.train_y, steps=steps, batch_size=128, lr=0.01, seed=0, **extra)
                after = evaluate(model, splits.val_x, splits.val_y)
                print(f"{label} steps {steps:>4} distill {use_teacher is not None!s:<5} "
                      f"val acc before fine-tune {before:.4f} after {after['accuracy']:.4f} "
                      f"(val loss {after['loss']:.4f})", flush=True)


if __name__ == "__main__":
    main()
