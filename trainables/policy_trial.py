"""The Ray Tune trainable for one compression policy: glue only.

decode -> apply policy -> fine-tune K steps -> evaluate on validation (and, in the final
phase, on test) -> price with hardware/ -> ``ray.tune.report``.

The dataset arrays and the base weights arrive through the object store
(``tune.with_parameters``), so worker nodes need no files. An exception inside the policy's
evaluation is caught and reported as a failed result with its message, so the search records
it and goes on; a worker that dies is retried by Tune (``FailureConfig.max_failures``).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass, replace

from hardware.budget import violation
from hardware.checks import check_number
from hardware.cost import total_costs
from hardware.policy import Policy
from hardware.specs import LayerSpec
from hardware.targets import load_target
from trainables.worker import free_accelerator_memory, log_training, quiet_sigterm, worker_tensors

quiet_sigterm()  # Ray loads this module in the trial actor's main thread: SIGTERM ends it without a traceback

CALIBRATION_SIZE = 512  # the fixed calibration batch: the first training images
MIN_RUNG_VAL = 1000  # a low rung's validation subset never has fewer examples (when the split has them)


def rung_val_size(val_size: int, steps: int, fine_tune_steps: int) -> int:
    """Validation examples a screening trial of ``steps`` evaluates: all of them at the run's
    ``fine_tune_steps`` (the top rung), else the first ``val_size * steps / fine_tune_steps``
    (at least ``MIN_RUNG_VAL``) of a fixed permutation (``rung_val_subset``): a short rung's
    evaluation shrinks with its fine-tune, so the rung costs trial seconds in proportion, and
    every policy of the rung is scored on the same examples."""
    if steps >= fine_tune_steps:
        return val_size
    return min(val_size, max(MIN_RUNG_VAL, math.ceil(val_size * steps / fine_tune_steps)))


def rung_val_subset(x, y, count: int):
    """The first ``count`` examples of one fixed permutation of the validation split (a user's
    split may be ordered by class; the permutation's seed is fixed, so every trial sees the same)."""
    import torch

    if count >= len(y):
        return x, y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:count].to(y.device)
    return x[order], y[order]


@dataclass(frozen=True)
class TrialSettings:
    model_ref: dict  # trainables.user_model reference: a zoo model with its shapes, or the user's factory
    target: str
    budget_metric: str
    budget_limit: float
    fine_tune_steps: int
    final_steps: int
    batch_size: int
    lr: float
    seed: int
    # LSQ step sizes' lr (trainables.train.DEFAULT_SCALE_LR); 0 freezes the initial MSE grids
    scale_lr: float = 0.05
    # distillation from the float base, used when the driver passes teacher_logits: loss =
    # (1 - weight) CE + weight T^2 KL; weight 0 (the default) trains on cross-entropy only
    distill_temperature: float = 4.0
    distill_weight: float = 0.0
    models_dir: str | None = None  # where final trials save their compressed models (shared storage)
    trainings_log: str | None = None  # the run's trainings.jsonl (trainables.worker.log_training)

    def __post_init__(self) -> None:
        from trainables.distill import check_distillation

        check_distillation(self.distill_temperature, self.distill_weight)
        check_number("scale_lr", self.scale_lr, minimum=0.0)  # 0 freezes the quantizer scales


def tuned_model(policy: Policy, *, splits, base_state: dict, specs: list[LayerSpec], settings: TrialSettings,
                steps: int, teacher_logits=None):
    """The base model compressed by ``policy`` and fine-tuned ``steps``: (model, fine_tune's record).

    ``teacher_logits``: the float base model's logits for every training example
    (``trainables.distill.teacher_logits``, computed once per run and shared by all trials),
    or None; used when ``settings.distill_weight > 0``. Common random numbers: every policy
    is calibrated on the same first ``CALIBRATION_SIZE`` training images and fine-tuned on
    the same minibatch stream (``fine_tune``'s seed), so trials compare paired."""
    import torch

    from trainables.compress import apply_policy
    from trainables.train import fine_tune
    from trainables.user_model import build_from_reference

    model = build_from_reference(settings.model_ref)
    model.load_state_dict(base_state)
    model.to(splits.train_x.device)
    torch.manual_seed(settings.seed)
    apply_policy(model, policy, specs, splits.train_x[:CALIBRATION_SIZE])
    distill = {}
    if teacher_logits is not None and settings.distill_weight > 0:
        distill = {"teacher_logits": teacher_logits, "distill_temperature": settings.distill_temperature,
                   "distill_weight": settings.distill_weight}
    tuned = fine_tune(model, splits.train_x, splits.train_y, steps=steps, batch_size=settings.batch_size,
                      lr=settings.lr, seed=settings.seed, scale_lr=settings.scale_lr, **distill)
    return model, tuned


def evaluate_policy(policy: Policy, *, splits, base_state: dict, specs: list[LayerSpec], settings: TrialSettings,
                    final: bool, teacher_logits=None, save_to: str | None = None, steps: int | None = None) -> dict:
    """Apply, fine-tune and evaluate one policy; return every metric a trial reports. A final
    trial (``final``) also reads the test split, once, and may save the compressed model's
    state_dict to ``save_to`` (what `evo export` ships). ``steps`` (a successive-halving rung's)
    replaces ``settings.fine_tune_steps`` of a screening trial."""
    from trainables.train import evaluate

    started = time.perf_counter()
    if final:
        steps = settings.final_steps
    elif steps is None:
        steps = settings.fine_tune_steps
    elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1")
    model, tuned = tuned_model(policy, splits=splits, base_state=base_state, specs=specs, settings=settings,
                               steps=steps, teacher_logits=teacher_logits)
    count = len(splits.val_y) if final else rung_val_size(len(splits.val_y), steps, settings.fine_tune_steps)
    val = evaluate(model, *rung_val_subset(splits.val_x, splits.val_y, count))
    metrics = {"accuracy": val["accuracy"], "loss": val["loss"], "train_loss": tuned["loss"], "steps": tuned["steps"],
               "val_examples": count}
    if final:
        test = evaluate(model, splits.test_x, splits.test_y)
        metrics.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
        if save_to is not None:
            _save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, save_to)
    costs = total_costs(specs, policy, load_target(settings.target))
    metrics.update({k: costs[k] for k in ("bops", "bops_dense", "bops_vs_fp32", "bops_vs_int8", "size_bits",
                                          "size_bits_honest", "size_vs_fp32", "energy_pj", "latency_s", "nnz")})
    cost = float(costs[settings.budget_metric])
    metrics.update(cost=cost, limit=settings.budget_limit, violation=violation(cost, settings.budget_limit))
    metrics["compute_seconds"] = time.perf_counter() - started
    return metrics


def _is_plain(value) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def final_model_path(models_dir: str, genome_key: str) -> str:
    """Where a final trial saves its compressed model (the run folder's ``models/``)."""
    return os.path.join(models_dir, genome_key.replace("|", "_") + ".pt")


def _save_atomic(state: dict, path: str) -> None:
    import torch

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def policy_trial(config: dict, *, data, base_state: dict, specs_json: str, settings: TrialSettings,
                 teacher_logits=None) -> None:
    """Ray Tune function trainable. ``config``: {"policy": Policy dict, "phase": "search"|"final", ...},
    or that mapping under the key "item" (grids over whole configs: uniform screening, final phase).
    ``teacher_logits``: see ``evaluate_policy`` (through the object store, like ``data``)."""
    import ray
    from ray import tune

    from hardware.specs import specs_from_json

    config = config.get("item", config)
    started = time.perf_counter()
    report = {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    try:
        splits = worker_tensors(data)
        policy = Policy.from_dict(config["policy"])
        specs = specs_from_json(specs_json)
        if teacher_logits is not None:  # numpy from the object store, onto the data's device
            import torch

            teacher_logits = torch.as_tensor(teacher_logits, device=splits.train_x.device)
        final = config.get("phase") == "final"
        repeat = int(config.get("repeat") or 0)
        if repeat:  # the same policy fine-tuned again on another minibatch stream (the seed spread)
            settings = replace(settings, seed=settings.seed + repeat)
        save_to = final_model_path(settings.models_dir, config["genome"]) \
            if final and not repeat and settings.models_dir and config.get("genome") else None
        metrics = evaluate_policy(policy, splits=splits, base_state=base_state, specs=specs, settings=settings,
                                  final=final, teacher_logits=teacher_logits, save_to=save_to,
                                  steps=config.get("steps"))
        report.update(metrics)
        bad = [k for k in ("accuracy", "loss") if not math.isfinite(report[k])]
        report["failed"] = 1 if bad else 0
        report["error"] = f"non-finite {', '.join(bad)}" if bad else ""
        # the whole result, durable before Tune carries it to the driver: a driver killed in
        # between loses nothing (evo.runs.resume.unlogged_trainings tells it on --resume)
        log_training(settings.trainings_log, {
            "phase": config.get("phase"), "genome": config.get("genome"), "label": config.get("label"),
            "generation": config.get("generation"), "repeat": config.get("repeat"), "rung": config.get("rung"),
            "steps": metrics["steps"],
            "samples": metrics["steps"] * settings.batch_size, "seconds": metrics["compute_seconds"],
            "node_id": report["node_id"], "result": {k: v for k, v in report.items() if _is_plain(v)}})
    except Exception as err:  # the policy's evaluation failed: record it, let the search go on
        report.update(failed=1, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-2000:],
                      accuracy=float("nan"))
    finally:
        free_accelerator_memory()
    report["wall_seconds"] = time.perf_counter() - started
    tune.report(report)
