"""Where tensors live and how many CPU threads torch uses."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The first CUDA GPU when one is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means ``default_device()``; a name is checked so a typo fails here, not mid-run."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device; valid examples: 'cpu', 'cuda', 'cuda:0'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but torch sees no GPU; use 'cpu' or leave it unset")
    return resolved


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers and Ray narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_torch_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads and return the number used.

    Without an argument: $OMP_NUM_THREADS when set (Ray sets it to a trial's CPU count),
    else the CPUs available to this process. More threads than cores only adds contention."""
    if num_threads is None:
        from_env = os.environ.get("OMP_NUM_THREADS", "")
        num_threads = int(from_env) if from_env.isdigit() and int(from_env) > 0 else available_cpus()
    if not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads={num_threads!r} must be a positive integer")
    torch.set_num_threads(num_threads)
    return num_threads
