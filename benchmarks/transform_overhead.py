"""How much the compression transforms slow a training step (compressed / float).

For each model and device: time SGD train steps (forward + backward + step) of the float
model and of the same model compressed with a uniform w4a8 policy at 50% unstructured
sparsity (trainables.compress). Warm-up steps first; float and compressed repeats
alternate so that load from other processes hits both alike; the median repeat counts.
The goal is a ratio <= 1.3. Prints a table; asserts nothing.

    python benchmarks/transform_overhead.py --steps 10 --repeats 5 --models lenet5,resnet20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from hardware.policy import Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy
from trainables.models import MODELS, create_model

# model -> (image shape, batch on CUDA, batch on CPU); lower a CPU batch if a run takes too long
SETUPS = {"lenet5": ((1, 28, 28), 128, 128), "resnet20": ((3, 32, 32), 128, 128), "mlp": ((1, 8, 8), 128, 128)}
POLICY = {"weight_bits": 4, "activation_bits": 8, "sparsity": 0.5}
WARMUP_STEPS = 5


def make_step(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()

    return step


def time_steps(step, steps: int, device: torch.device) -> float:
    """Milliseconds per step over ``steps`` consecutive steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3 / steps


def measure(name: str, device: torch.device, steps: int, repeats: int) -> tuple[float, float]:
    """(float ms/step, compressed ms/step), medians over ``repeats``."""
    image_shape, cuda_batch, cpu_batch = SETUPS[name]
    batch = cuda_batch if device.type == "cuda" else cpu_batch
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn((batch, *image_shape), generator=generator).to(device)
    targets = torch.randint(0, 10, (batch,), generator=generator).to(device)
    models = {}
    for kind in ("float", "compressed"):
        torch.manual_seed(0)
        model = create_model(name, in_channels=image_shape[0], num_classes=10, image_shape=image_shape).to(device)
        if kind == "compressed":
            specs = profile_model(model, image_shape)
            apply_policy(model, Policy.uniform([s.name for s in specs], **POLICY), specs, inputs)
        models[kind] = make_step(model.train(), inputs, targets)
    for step in models.values():
        time_steps(step, WARMUP_STEPS, device)
    timings = {kind: [] for kind in models}
    for _ in range(repeats):  # alternate so that background load hits both alike
        for kind, step in models.items():
            timings[kind].append(time_steps(step, steps, device))
    return statistics.median(timings["float"]), statistics.median(timings["compressed"])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="train steps per timed repeat (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median counts (default 5)")
    parser.add_argument("--models", default="lenet5,resnet20", help="comma-separated, from: " + ",".join(SETUPS))
    parser.add_argument("--devices", default=None, help="comma-separated (default: cpu, plus cuda when available)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as in a one-CPU Ray trial; more threads on a busy machine time the contention)")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in args.models:
        if model not in SETUPS or model not in MODELS:
            parser.error(f"unknown model {model!r}; valid choices: {sorted(SETUPS)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads={args.threads} must be >= 1")
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps={args.steps} and --repeats={args.repeats} must both be >= 1")
    default = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    args.devices = [torch.device(d) for d in args.devices.split(",")] if args.devices else [torch.device(d) for d in default]
    if any(d.type == "cuda" for d in args.devices) and not torch.cuda.is_available():
        parser.error("--devices asks for cuda but torch sees no GPU; valid here: cpu")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"policy: uniform w{POLICY['weight_bits']}a{POLICY['activation_bits']}, "
          f"{POLICY['sparsity']:.0%} unstructured sparsity; {args.steps} steps x {args.repeats} repeats; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'model':<10} {'device':<6} {'batch':>5} {'float ms/step':>14} {'compressed ms/step':>19} {'ratio':>6}")
    for name in args.models:
        for device in args.devices:
            batch = SETUPS[name][1] if device.type == "cuda" else SETUPS[name][2]
            float_ms, compressed_ms = measure(name, device, args.steps, args.repeats)
            print(f"{name:<10} {device.type:<6} {batch:>5} {float_ms:>14.2f} {compressed_ms:>19.2f} "
                  f"{compressed_ms / float_ms:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
