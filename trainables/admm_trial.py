"""The Ray Tune trainable of the ADMM baseline: one budget and one seed per trial. Glue only.

base weights -> ``run_admm`` (one report per epoch) -> validation, then the test split ONCE
-> price the final policy with ``hardware.cost.total_costs`` (the accounting of the evolved
policies) -> the final report, with the keys ``policy_trial`` reports.

Dataset arrays and base weights arrive through the object store (``tune.with_parameters``).
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from dataclasses import dataclass, replace
from typing import Callable

from hardware.budget import violation
from hardware.cost import total_costs
from hardware.specs import LayerSpec

from .knapsack import ADMMSettings
from .worker import free_accelerator_memory, log_training, quiet_sigterm, worker_tensors

quiet_sigterm()  # Ray loads this module in the trial actor's main thread: SIGTERM ends it without a traceback

COST_KEYS = ("bops", "bops_dense", "bops_vs_fp32", "bops_vs_int8", "size_bits", "size_bits_honest", "size_vs_fp32",
             "energy_pj", "latency_s", "nnz")


@dataclass(frozen=True)
class ADMMTrialSettings:
    model_ref: dict  # trainables.user_model reference, as in policy_trial.TrialSettings
    target: str
    admm: ADMMSettings
    activation_bits: int = 8  # b_a of BOPs budgets (size budgets keep float activations)
    trainings_log: str | None = None  # the run's trainings.jsonl (trainables.worker.log_training)


def run_admm_trial(run: dict, *, splits, base_state: dict, specs: list[LayerSpec], settings: ADMMTrialSettings,
                   report: Callable[[dict], None] = lambda metrics: None) -> dict:
    """Compress the base model under ``run`` = {"budget", "metric", "limit", "seed"}; report
    each epoch through ``report`` and return the final metrics."""
    import torch

    from trainables.admm import run_admm
    from trainables.knapsack import BudgetConstraint
    from trainables.user_model import build_from_reference
    from trainables.train import evaluate

    started = time.perf_counter()
    constraint = BudgetConstraint.from_specs(specs, run["metric"], run["limit"],
                                             activation_bits=settings.activation_bits)
    admm_settings = replace(settings.admm, seed=int(run["seed"]))
    model = build_from_reference(settings.model_ref)
    model.load_state_dict(base_state)
    model.to(splits.train_x.device)
    torch.manual_seed(admm_settings.seed)

    def on_epoch(record: dict) -> None:
        report({**record, "phase": "epoch", "violation": violation(record["cost"], record["limit"]), "budget": run["budget"], "seed": run["seed"]})

    result = run_admm(model, splits, specs, constraint, admm_settings, on_epoch=on_epoch)
    val = evaluate(result.model, splits.val_x, splits.val_y)
    test = evaluate(result.model, splits.test_x, splits.test_y)  # the only look at the test split
    costs = total_costs(specs, result.policy, settings.target)
    cost = float(costs[constraint.metric])
    metrics = {"accuracy": val["accuracy"], "loss": val["loss"], "test_accuracy": test["accuracy"],
               "test_loss": test["loss"], "train_loss": result.train_loss, "steps": result.steps,
               **{key: costs[key] for key in COST_KEYS}, "cost": cost, "limit": constraint.limit,
               "violation": violation(cost, constraint.limit), "policy": result.policy.to_json(),
               "bits_per_layer": result.bits, "nnz_per_layer": result.nnz, "nonzero_per_layer": result.nonzero,
               "constraint_on_weights": result.constraint_value, "epoch": len(result.history),
               "history": json.dumps(result.history)}
    metrics["compute_seconds"] = time.perf_counter() - started
    return metrics


def admm_trial(config: dict, *, data, base_state: dict, specs_json: str, settings: ADMMTrialSettings) -> None:
    """Ray Tune function trainable; ``config["run"]`` names the budget and seed of this trial."""
    import ray
    from ray import tune

    from hardware.specs import specs_from_json
    from trainables.device import set_torch_threads

    run = config.get("run", config)
    started = time.perf_counter()
    final = {"phase": "final", "budget": run.get("budget"), "seed": run.get("seed"),
             "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    try:
        set_torch_threads()  # Ray sets OMP_NUM_THREADS to the trial's CPUs; more threads only contend
        splits = worker_tensors(data)
        final.update(run_admm_trial(run, splits=splits, base_state=base_state, specs=specs_from_json(specs_json),
                                    settings=settings, report=tune.report))
        log_training(settings.trainings_log, {
            "phase": "final", "budget": run.get("budget"), "seed": run.get("seed"), "steps": final["steps"],
            "samples": final["steps"] * settings.admm.batch_size, "seconds": final["compute_seconds"],
            "node_id": final["node_id"]})
        bad = [key for key in ("accuracy", "loss") if not math.isfinite(final[key])]
        final.update(failed=1 if bad else 0, error=f"non-finite {', '.join(bad)}" if bad else "")
    except Exception as err:  # recorded as a failed result; the other budgets and seeds go on
        final.update(failed=1, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-2000:],
                     accuracy=float("nan"))
    finally:
        free_accelerator_memory()
    final["wall_seconds"] = time.perf_counter() - started
    tune.report(final)
