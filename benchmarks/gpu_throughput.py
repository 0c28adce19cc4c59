"""GPU packing: trials per hour and the GPU's busy fraction with 1, 2 and 4 policy trials per GPU
(fractional ``gpus_per_trial`` = 1, 0.5, 0.25) for LeNet-5 and ResNet-20.

Each trial is the real policy trial (apply a random policy of the search space, fine-tune
--steps, evaluate, price). Throughput does not depend on the weights or the pixel values, so the
base model is freshly initialised and, where the real dataset is not on disk (CIFAR-10 needs
--data-dir), the images are seeded noise of the dataset's shape. The busy fraction is the mean
of ``nvidia-smi`` utilization samples (the share of time a kernel was running) taken every
--sample-seconds while the trials run. Fractional GPUs share memory without isolation.

    python benchmarks/gpu_throughput.py [--models lenet5 resnet20] [--packing 1 2 4] [--trials 16]

Without a GPU it prints "no GPU: skipped" and exits 0; --cpu-dry-run runs the same grid with one
CPU per trial instead (to check the script itself on a CPU machine; no busy fraction).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL_DATA = {"lenet5": "fashion-mnist", "resnet20": "cifar10"}
SYNTHETIC_TRAIN, SYNTHETIC_VAL = 10_000, 1_000


class UtilizationSampler:
    """Samples the GPUs' utilization (%) with nvidia-smi in a background thread."""

    def __init__(self, every_seconds: float):
        self.every = every_seconds
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        while not self._stop.wait(self.every):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            values = [float(v) for v in out if v.replace(".", "", 1).isdigit()]
            if values:
                self.samples.append(sum(values) / len(values))

    def __enter__(self) -> "UtilizationSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def busy_fraction(self) -> float | None:
        return sum(self.samples) / len(self.samples) / 100 if self.samples else None


def load_or_synthesize(model: str, data_dir: str | None):
    """The model's real dataset when it loads, else seeded noise of the same shape (and say which)."""
    import numpy as np

    from trainables.data import DataSplits, dataset_info, load_dataset

    dataset = MODEL_DATA[model]
    try:
        return load_dataset(dataset, data_dir=data_dir), dataset
    except ValueError:
        info = dataset_info(dataset)
        rng = np.random.default_rng(0)

        def images(n):
            return rng.standard_normal((n, *info["image_shape"]), dtype=np.float32)

        def labels(n):
            return rng.integers(0, info["num_classes"], n).astype(np.int64)

        train, held_out = SYNTHETIC_TRAIN, SYNTHETIC_VAL
        splits = DataSplits(name=f"synthetic-{dataset}", train_x=images(train), train_y=labels(train),
                            val_x=images(held_out), val_y=labels(held_out), test_x=images(held_out),
                            test_y=labels(held_out), in_channels=info["in_channels"],
                            num_classes=info["num_classes"], image_shape=tuple(info["image_shape"]))
        return splits, splits.name


def trial_grid(model: str, splits, *, trials: int, steps: int, batch_size: int, seed: int):
    """The trainable (data and base weights in the object store) and ``trials`` random policies."""
    from evo.core.space import SearchSpace
    from hardware.profiler import profile_model
    from hardware.specs import specs_to_json
    from trainables.models import create_model
    from trainables.policy_trial import TrialSettings

    net = create_model(model, in_channels=splits.in_channels, num_classes=splits.num_classes,
                       image_shape=splits.image_shape)
    specs = profile_model(net, splits.image_shape)
    space = SearchSpace(layer_names=tuple(s.name for s in specs))
    rng = random.Random(seed)
    policies = [space.decode(space.random_genome(rng)).to_dict() for _ in range(trials)]
    settings = TrialSettings(model_ref={"kind": "zoo", "name": model, "in_channels": splits.in_channels,
                                        "num_classes": splits.num_classes, "image_shape": list(splits.image_shape)},
                             target="bitserial", budget_metric="bops", budget_limit=1e30,  # prices only: no budget here
                             fine_tune_steps=steps, final_steps=steps, batch_size=batch_size, lr=0.01, seed=seed)
    return net.state_dict(), specs_to_json(specs), settings, policies


def run_packed(model: str, splits, per_gpu: int, gpus: int, args) -> dict:
    from ray import tune

    from evo.tune.tuner import build_tuner, policy_trainable

    base_state, specs_json, settings, policies = trial_grid(model, splits, trials=args.trials, steps=args.steps,
                                                            batch_size=args.batch_size, seed=args.seed)
    gpus_per_trial = 0.0 if args.cpu_dry_run else 1.0 / per_gpu
    trainable = policy_trainable(data=splits, base_state=base_state, specs_json=specs_json, settings=settings,
                                 cpus=args.cpus_per_trial, gpus=gpus_per_trial)
    configs = [{"phase": "search", "policy": p} for p in policies]
    slots = per_gpu * max(gpus, 1)
    with tempfile.TemporaryDirectory() as run_dir, UtilizationSampler(args.sample_seconds) as sampler:
        tuner = build_tuner(trainable, run_dir=Path(run_dir), experiment=f"{model}-x{per_gpu}",
                            param_space={"item": tune.grid_search(configs)}, max_concurrent=slots, max_failures=0,
                            verbose=0, num_samples=1)
        started = time.perf_counter()
        results = list(tuner.fit())
        wall = time.perf_counter() - started
    metrics = [r.metrics or {} for r in results]
    failed = sum(1 for r, m in zip(results, metrics) if r.error is not None or m.get("failed"))
    compute = [m["compute_seconds"] for m in metrics if "compute_seconds" in m]
    return {"per_gpu": per_gpu, "gpus_per_trial": gpus_per_trial, "trials": len(results), "failed": failed,
            "wall": wall, "trials_per_hour": len(results) / wall * 3600,
            "mean_trial_seconds": sum(compute) / len(compute) if compute else float("nan"),
            "busy": None if args.cpu_dry_run else sampler.busy_fraction}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20"], choices=sorted(MODEL_DATA))
    parser.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4], help="trials per GPU")
    parser.add_argument("--trials", type=int, default=16, help="trials per (model, packing)")
    parser.add_argument("--steps", type=int, default=300, help="fine-tune steps per trial")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py (else ResNet-20 gets noise images)")
    parser.add_argument("--sample-seconds", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-dry-run", action="store_true", help="no GPU: run the grid on CPUs to test the script")
    args = parser.parse_args()
    if any(k < 1 for k in args.packing) or args.trials < 1 or args.steps < 1:
        parser.error(f"--packing {args.packing}, --trials {args.trials}, --steps {args.steps}: each must be >= 1")

    import torch

    gpus = torch.cuda.device_count()
    if gpus == 0 and not args.cpu_dry_run:
        print("no GPU: skipped")
        return 0
    if gpus and shutil.which("nvidia-smi") is None:
        print("nvidia-smi not found: the busy fraction will be missing")
    import ray

    from evo.tune.cluster import start_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    start_ray(None, log=print)
    device = torch.cuda.get_device_name(0) if gpus else "CPU (dry run)"
    print(f"{device} x{max(gpus, 1)}; {args.trials} trials of {args.steps} fine-tune steps (batch {args.batch_size}) "
          "per row")
    print("  model    | data                  | trials/GPU | trials | failed | wall s | trials/hour | mean trial s | "
          "GPU busy")
    try:
        for model in args.models:
            splits, data_name = load_or_synthesize(model, args.data_dir)
            for per_gpu in args.packing:
                row = run_packed(model, splits, per_gpu, gpus, args)
                busy = "n/a" if row["busy"] is None else f"{row['busy']:.0%}"
                print(f"  {model:<8} | {data_name:<21} | {per_gpu:>10} | {row['trials']:>6} | {row['failed']:>6} | "
                      f"{row['wall']:>6.1f} | {row['trials_per_hour']:>11.0f} | {row['mean_trial_seconds']:>12.2f} | "
                      f"{busy:>8}", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
