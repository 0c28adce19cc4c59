"""Per-worker-process state shared by the Ray trainables (policy trials, ADMM trials)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

# Tensors made from the object-store arrays, kept per worker process so a reused actor
# (reuse_actors=True) does not copy the dataset to the device again for every trial.
_TENSOR_CACHE: dict = {}


def worker_tensors(data):
    """``data`` (a numpy DataSplits from the object store) as tensors on this worker's device."""
    from trainables.data import to_tensors
    from trainables.device import default_device

    device = default_device()
    # The object store hands every trial a fresh view of the same arrays: key on content facts.
    key = (data.name, data.train_x.shape, data.val_x.shape, float(data.train_x[:4].sum()), str(device))
    if key not in _TENSOR_CACHE:
        _TENSOR_CACHE.clear()
        _TENSOR_CACHE[key] = to_tensors(data, device)
    return _TENSOR_CACHE[key]


def free_accelerator_memory() -> None:
    """Hand cached CUDA blocks back between trials (a reused actor outlives its trial)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def log_training(path: str | None, record: dict) -> None:
    """Append one finished training to the run's ``trainings.jsonl`` (the trainable's own log,
    written by the worker as the training ends, so a killed driver loses none): what was trained,
    its steps and samples, seconds, node and process. One ``write`` of a line under O_APPEND, so
    concurrent trials never interleave; fsynced, so it survives the machine too."""
    if path is None:
        return
    import json

    os.makedirs(os.path.dirname(path), exist_ok=True)
    # NaN and inf are written as JSON's NaN / Infinity (Python's json reads them back)
    line = (json.dumps({**record, "pid": os.getpid(), "time": time.time()}, sort_keys=True) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def quiet_sigterm() -> None:
    """In a Ray worker's main thread, make SIGTERM end the process the way the signal asks, without
    a traceback. Ray's own handler raises SystemExit wherever the main thread happens to be; when
    that is a finalizer or weakref callback (a tensor freed while Tune stops a reused trial actor),
    Python swallows it, prints "Exception ignored ... SystemExit: 1" to the run's console and the
    worker lives on until it is killed. Called at import of the trainables, which Ray loads in the
    main thread when it creates the trial actor; a no-op anywhere else (the driver, a plain
    script, another thread)."""
    worker = sys.modules.get("ray._private.worker")
    if worker is None or threading.current_thread() is not threading.main_thread():
        return
    if worker.global_worker.mode != worker.WORKER_MODE:
        return
    signal.signal(signal.SIGTERM, _end_by_sigterm)


def _end_by_sigterm(signum, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream: nothing left to keep
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
