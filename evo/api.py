"""The Python API: ``search``, ``profile``, ``export`` on your own model and data, over the same
code path as the command line (the API turns in-memory objects into the CLI's inputs, then runs
the same pipeline).

- a model given as an ``nn.Module`` (its current weights are the base model) or a zero-argument
  factory is pickled with cloudpickle into evo's cache (``$EVO_CACHE_DIR``, shared between the
  nodes of a cluster), so Ray workers rebuild it even when its class lives in your script;
- data given as arrays (``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val``) or
  as torch Datasets yielding (x, y) is checked, then saved as an ``.npz`` in the same cache;
- strings pass through unchanged: a zoo name or ``file.py:function``, a dataset name or ``.npz``.

Cache files are named by a hash of their content, so the same model and data reuse them (and the
pretraining cache keyed on them).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

__all__ = ["SearchResult", "export", "profile", "search"]


@dataclass
class SearchResult:
    """What ``search`` returns.

    Attributes:
        run_dir: the run folder (trials.parquet, pareto.parquet, run.yaml, models/).
        front: the final policies (fine-tuned, each seed tested once), as rows of pareto.parquet.
        best: the final policy within the budget with the best mean validation accuracy over its
            final seeds (None if none): its seed-0 row with ``accuracy`` and ``test_accuracy`` the
            means over the seeds, ``val_std``/``test_std`` their spread and ``repeats`` the seeds
            (``evo.runs.summary.best_final``; the policy `evo export` ships).
        generations: one dict per generation (hypervolume, best accuracy in budget, ...).
    """

    run_dir: Path
    front: list[dict]
    best: dict | None
    generations: list[dict]

    @property
    def best_policy(self):
        """The best policy as a hardware.policy.Policy (None if no final policy is within budget)."""
        import json

        from hardware.policy import Policy

        return None if self.best is None else Policy.from_dict(json.loads(self.best["policy"]))


def _cache_folder(kind: str) -> Path:
    from trainables.pretrain import default_cache_dir

    folder = default_cache_dir().parent / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_by_content(kind: str, suffix: str, payload: bytes) -> str:
    path = _cache_folder(kind) / f"{hashlib.sha256(payload).hexdigest()[:16]}{suffix}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)
    return str(path)


def model_spec(model) -> tuple[str, str | None]:
    """(--model, --weights) for a model given as a string, an nn.Module or a zero-argument factory."""
    import ray.cloudpickle as cloudpickle
    import torch
    from torch import nn

    if isinstance(model, str):
        return model, None
    if isinstance(model, nn.Module):
        template = _detached(model)
        factory = _Copy(template)
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        weights = _write_by_content("weights", ".pt", buffer.getvalue())
    elif callable(model):
        factory, weights = model, None
    else:
        raise ValueError(f"model={type(model).__name__}: pass an nn.Module, a zero-argument function returning one, "
                         "a zoo name or 'path/to/file.py:function'")
    return _write_by_content("models", ".pkl", cloudpickle.dumps(factory)), weights


class _Copy:
    """A picklable zero-argument factory: a fresh deep copy of the user's module each call."""

    def __init__(self, template):
        self.template = template

    def __call__(self):
        import copy

        return copy.deepcopy(self.template)


def _detached(model):
    import copy

    return copy.deepcopy(model).cpu()


def data_spec(data) -> str:
    """--dataset for data given as a string, a mapping of arrays or (train, test[, val]) Datasets."""
    import numpy as np

    from trainables.user_data import check_arrays

    if isinstance(data, (str, Path)):
        return str(data)
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in data.items()}
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        arrays = {}
        for split, dataset in zip(("train", "test", "val"), data):
            xs, ys = zip(*[(np.asarray(x), int(y)) for x, y in dataset])
            arrays[f"x_{split}"], arrays[f"y_{split}"] = np.stack(xs), np.asarray(ys)
    else:
        raise ValueError(f"data={type(data).__name__}: pass a mapping of arrays (x_train, y_train, x_test, y_test[, "
                         "x_val, y_val]), (train, test[, val]) Datasets yielding (x, y), a .npz path or a dataset name")
    check_arrays(arrays, source="evo.search(data=...)")  # a clear error before anything is written
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return _write_by_content("data", ".npz", buffer.getvalue())


def search(model, data, *, budget: str = "bops=1/512", weights: str | None = None, method: str = "evo",
           name: str | None = None, storage: str = "runs", preset: str | None = None, resume: bool = False,
           log: Callable = print, **settings) -> SearchResult:
    """Search compression policies for ``model`` on ``data`` within ``budget``.

    Args:
        model: an nn.Module (its weights are the base model unless ``weights`` is given), a
            zero-argument function returning one (pretrained by evo unless ``weights``), a zoo name
            or ``path/to/file.py:function``.
        data: arrays (x_train, y_train, x_test, y_test[, x_val, y_val]), (train, test[, val])
            Datasets of (x, y), a ``.npz`` path or a built-in dataset name.
        budget: e.g. ``bops=1/512``, ``size=1/50``, ``energy=1/20``, ``latency=0.5xfp32``.
        weights: a state_dict checkpoint file for the base model.
        method: ``evo`` or a baseline (``uniform``, ``random``, ``optuna``).
        name, storage, preset, resume: the run folder <storage>/<name> and the settings preset.
        settings: any evo.runs.config.SearchConfig field (population, generations, target, ...).
    """
    from evo.methods import run_method
    from evo.runs.config import resolve_config
    from evo.runs.summary import best_final

    model_text, own_weights = model_spec(model)
    overrides = {**settings, "model": model_text, "dataset": data_spec(data), "budget": budget,
                 "weights": weights or own_weights, "storage": storage, "name": name}
    cfg = resolve_config(preset, None, overrides)
    outcome = run_method(method, cfg, resume=resume, log=log)
    return SearchResult(run_dir=outcome.run_dir, front=outcome.final_rows, best=best_final(outcome.final_rows),
                        generations=outcome.generations)


def profile(model, input_shape, *, policy=None, target: str | None = None) -> dict:
    """The per-layer cost table of ``model`` (an nn.Module, or a zoo name / file.py:function with
    ``input_shape``), float or under ``policy`` (a Policy or a policy file): {"layers", "totals"}."""
    from torch import nn

    from hardware.cost import layer_costs, total_costs
    from hardware.policy import Policy
    from hardware.profiler import profile_model
    from hardware.targets import DEFAULT_TARGET, load_target
    from trainables.user_model import build_user_model, is_user_spec, resolve_model

    shape = tuple(int(d) for d in input_shape)
    if isinstance(model, str):
        model = build_user_model(model) if is_user_spec(model) else resolve_model(
            model, None, in_channels=shape[0], num_classes=10, image_shape=shape)[0]
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__}: pass an nn.Module, a zoo name or 'path/to/file.py:function'")
    specs = profile_model(model, shape)
    if isinstance(policy, (str, Path)):
        policy = Policy.load(policy)
    policy = policy or Policy.float([s.name for s in specs])
    policy.check_matches([s.name for s in specs])
    target = load_target(target or DEFAULT_TARGET)
    return {"layers": layer_costs(specs, policy, target), "totals": total_costs(specs, policy, target)}


def export(run_dir, *, out, policy: str | None = None, log: Callable = print) -> dict:
    """``evo export`` from Python: see evo.runs.export.export_run."""
    from evo.runs.export import export_run

    return export_run(run_dir, out=out, policy=policy, log=log)
