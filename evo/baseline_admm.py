"""`evo baseline admm`: the constrained-gradient baseline (Yang et al., CVPR 2020) under the
budgets, base model, validation split and cost accounting of `evo search`.

validate (no Ray) -> prepare (data, profile, reachability of every budget, pretrained base)
-> one Ray Tune trial per budget x seed, all in parallel -> <storage>/<name>/:

  run.yaml          method admm, the config, versions, budgets with their limits
  trials.parquet    TRIAL_SCHEMA rows, method "admm": phase "final" (one per trial) and
                    phase "epoch" (one per epoch of each trial)
  policies/*.yaml   the final policy of each trial (``evo profile --policy`` reads them)

``--resume`` runs only the budget x seed pairs without a finished final row.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from evo.results import TRIAL_SCHEMA, PartWriter, compact, read_table, versions, write_yaml_atomic
from hardware.budget import parse_budget
from hardware.policy import Policy, check_bits
from trainables.knapsack import CONSTRAINED_METRICS, ADMMSettings, BudgetConstraint, check_quantizer, policy_from

METHOD = "admm"
NOTES = ("Yang et al. (CVPR 2020) constrain model size (size_bits, their count: kept weights x bits); a BOPs "
         "budget is our extension (a weight costs b_w * b_a * H*W of its layer, b_a fixed). Bit widths are "
         "2..8: the policy vocabulary has no 1-bit weights.")


@dataclass(frozen=True)
class ADMMConfig:
    model: str = "lenet5"
    dataset: str = "fashion-mnist"
    budgets: tuple[str, ...] = ("size=1/50",)
    seeds: int = 3
    admm: ADMMSettings = field(default_factory=ADMMSettings)
    activation_bits: int = 8  # b_a of BOPs budgets
    target: str = "bitserial"
    data_dir: str | None = None
    val_fraction: float = 0.1
    pretrain_epochs: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 1
    address: str | None = None
    storage: str = "runs"
    name: str = "admm"
    verbose: int = 0

    def __post_init__(self) -> None:
        from hardware.targets import load_target

        object.__setattr__(self, "budgets", tuple(self.budgets))
        if not self.budgets:
            raise ValueError("give at least one --budget, e.g. size=1/50")
        for text in self.budgets:
            metric = parse_budget(text).metric
            if metric not in CONSTRAINED_METRICS:
                raise ValueError(f"budget {text!r}: the ADMM baseline constrains size (size_bits) or bops, not "
                                 f"{metric!r}; valid choices: {list(CONSTRAINED_METRICS)}")
        slugs = [budget_slug(text) for text in self.budgets]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"budgets {list(self.budgets)} repeat a budget")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds={self.seeds!r} must be a positive integer (runs use seeds 0..seeds-1)")
        check_quantizer(self.admm.quantizer)
        check_bits(self.activation_bits, "activation_bits")
        if not (isinstance(self.cpus_per_trial, (int, float)) and self.cpus_per_trial > 0):
            raise ValueError(f"cpus_per_trial={self.cpus_per_trial!r} must be a positive number")
        if not (isinstance(self.gpus_per_trial, (int, float)) and self.gpus_per_trial >= 0):
            raise ValueError(f"gpus_per_trial={self.gpus_per_trial!r} must be >= 0")
        if isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int) or self.max_concurrent < 0:
            raise ValueError(f"max_concurrent={self.max_concurrent!r} must be an integer >= 0 (0: as many as fit)")
        load_target(self.target)
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name={self.name!r} must be a plain folder name")

    @property
    def run_dir(self) -> Path:
        return Path(self.storage).expanduser().resolve() / self.name

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "admm"}
        data["budgets"] = list(self.budgets)
        return {**data, **{f"admm_{k}": v for k, v in dataclasses.asdict(self.admm).items() if k != "seed"}}


def budget_slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


@dataclass
class PreparedADMM:
    cfg: ADMMConfig
    splits: object
    base_state: dict
    base_accuracy: dict
    specs: list
    runs: list[dict]  # {"budget", "metric", "limit", "seed"} per trial


def prepare_admm(cfg: ADMMConfig, *, resume: bool, log: Callable = print) -> PreparedADMM:
    """Everything that can fail before Ray starts; only the pretraining cache is written."""
    from evo.prepare import BASE_SEED, SPLIT_SEED, check_address, check_run_dir
    from hardware.budget import budget_limit
    from hardware.profiler import profile_model
    from hardware.targets import load_target
    from trainables.data import load_dataset
    from trainables.models import create_model
    from trainables.pretrain import pretrain

    check_address(cfg.address)  # an unreachable cluster fails in seconds, before the data and the base model
    check_run_dir(cfg, resume)  # reads cfg.run_dir and cfg.to_dict()
    target = load_target(cfg.target)
    splits = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction, seed=SPLIT_SEED)
    model = create_model(cfg.model, in_channels=splits.in_channels, num_classes=splits.num_classes,
                         image_shape=splits.image_shape)
    specs = profile_model(model, splits.image_shape)
    runs = []
    for text in cfg.budgets:
        budget = parse_budget(text)
        limit = budget_limit(budget, specs, target)
        BudgetConstraint.from_specs(specs, budget.metric, limit, activation_bits=cfg.activation_bits
                                    ).check_reachable(text)
        runs += [{"budget": text, "metric": budget.metric, "limit": limit, "seed": seed} for seed in range(cfg.seeds)]
    base = pretrain(cfg.model, cfg.dataset, epochs=cfg.pretrain_epochs, seed=BASE_SEED, data_dir=cfg.data_dir, log=log)
    return PreparedADMM(cfg=cfg, splits=splits, base_state=base.state_dict, specs=specs, runs=runs,
                        base_accuracy={"val_accuracy": base.val_accuracy, "test_accuracy": base.test_accuracy})


def finished_runs(run_dir: Path) -> set[tuple[str, int]]:
    """(budget, seed) pairs that already have a successful final row."""
    table = read_table(run_dir / "trials.parquet", TRIAL_SCHEMA)
    if table.num_rows == 0:
        return set()
    rows = table.select(["method", "phase", "status", "budget", "seed"]).to_pylist()
    return {(r["budget"], r["seed"]) for r in rows if r["method"] == METHOD and r["phase"] == "final"
            and r["status"] == "ok"}


def run_admm_baseline(cfg: ADMMConfig, *, resume: bool = False, log: Callable = print) -> list[dict]:
    """Run every missing budget x seed trial; return the final rows written."""
    from evo.tuner import start_cluster

    prep = prepare_admm(cfg, resume=resume, log=log)
    run_dir = cfg.run_dir
    done = finished_runs(run_dir) if resume else set()
    todo = [r for r in prep.runs if (r["budget"], r["seed"]) not in done]
    # Ray and the cluster are checked before the run folder exists, as in evo search (and not started
    # at all when a resumed run has nothing left to do)
    slots = start_cluster(cfg, run_dir, log=log)[1] if todo else 0
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_yaml_atomic(run_dir / "run.yaml", {
            "method": METHOD, "config": cfg.to_dict(), "versions": versions(), "started_at": time.time(),
            "target": cfg.target, "notes": NOTES, "base_model": prep.base_accuracy,
            "budgets": [{"text": r["budget"], "metric": r["metric"], "limit": r["limit"]}
                        for r in prep.runs if r["seed"] == 0],
            "layers": [s.to_dict() for s in prep.specs],
        })
    log(f"admm: {len(todo)} trial(s) to run ({len(prep.runs) - len(todo)} already finished); base model "
        f"validation accuracy {prep.base_accuracy['val_accuracy']:.4f}")
    rows = _run_trials(prep, todo, slots, log) if todo else []
    compact(run_dir / "trials.parquet", TRIAL_SCHEMA)
    finals = [r for r in rows if r["phase"] == "final"]
    log(format_results(finals))
    log(f"results: {run_dir}")
    return finals


def _run_trials(prep: PreparedADMM, todo: list[dict], slots: int, log: Callable) -> list[dict]:
    from ray import tune

    from evo.tuner import build_tuner
    from hardware.specs import specs_to_json
    from trainables.admm_trial import ADMMTrialSettings, admm_trial

    cfg = prep.cfg
    settings = ADMMTrialSettings(model=cfg.model, image_shape=tuple(prep.splits.image_shape),
                                 num_classes=prep.splits.num_classes, target=cfg.target, admm=cfg.admm,
                                 activation_bits=cfg.activation_bits)
    trainable = tune.with_resources(
        tune.with_parameters(admm_trial, data=prep.splits, base_state=prep.base_state,
                             specs_json=specs_to_json(prep.specs), settings=settings),
        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})
    log(f"admm: {len(todo)} trial(s), {slots} at once, {cfg.admm.epochs} ADMM + {cfg.admm.fine_tune_epochs} "
        f"fine-tune epochs each, quantizer {cfg.admm.quantizer}")
    tuner = build_tuner(trainable, run_dir=cfg.run_dir, experiment=f"admm-{int(time.time())}", search_alg=None,
                        param_space={"run": tune.grid_search(todo)}, max_concurrent=slots,
                        max_failures=cfg.max_failures, verbose=cfg.verbose, num_samples=1)
    rows = []
    for result in tuner.fit():
        rows += result_rows(prep, result.config["run"], dict(result.metrics or {}), result.error)
    PartWriter(cfg.run_dir / "trials.parquet", TRIAL_SCHEMA).append(rows)
    for row in rows:
        if row["phase"] == "final" and row["status"] == "ok":
            Policy.from_dict(json.loads(row["policy"])).save(cfg.run_dir / "policies" / policy_file_name(row))
    return rows


def policy_file_name(row: dict) -> str:
    return f"{budget_slug(row['budget'])}-seed{row['seed']}.yaml"


def result_rows(prep: PreparedADMM, run: dict, metrics: dict, error) -> list[dict]:
    """The final row and the per-epoch rows of one trial."""
    common = {"method": METHOD, "trial_id": metrics.get("trial_id"), "target": prep.cfg.target,
              "budget": run["budget"], "label": run["budget"], "seed": run["seed"], "finished_at": time.time()}
    failed = error is not None or bool(metrics.get("failed")) or metrics.get("phase") != "final"
    message = str(error) if error is not None else (metrics.get("error") or None)
    if not failed and metrics.get("violation", 1.0) > 0:  # never expected: run_admm checks the budget itself
        failed, message = True, f"final policy breaks the budget (violation {metrics['violation']:.3g})"
    history = json.loads(metrics.pop("history", "[]") or "[]")
    for key in ("config", "phase", "budget", "seed", "trial_id"):
        metrics.pop(key, None)
    final = {**metrics, **common, "phase": "final", "status": "failed" if failed else "ok", "error": message}
    if failed:
        final.pop("policy", None)
    activation_bits = 32 if run["metric"] == "size_bits" else prep.cfg.activation_bits
    epochs = [{**record, **common, "phase": "epoch", "status": "ok",
               "violation": max(0.0, record["cost"] / record["limit"] - 1.0),
               "policy": policy_from(prep.specs, record["nnz_per_layer"], record["bits_per_layer"],
                                     activation_bits).to_json()}
              for record in history]
    return [final] + epochs


def format_results(finals: list[dict]) -> str:
    """One line per trial: accuracies, the budget's cost against its limit, bits per layer."""
    lines = [f"{'budget':<16} {'seed':>4} {'val acc':>8} {'test acc':>8} {'cost / limit':>13} "
             f"{'size x fp32':>11}  bits per layer"]
    for row in sorted(finals, key=lambda r: (r["budget"], r["seed"])):
        if row["status"] != "ok":
            lines.append(f"{row['budget']:<16} {row['seed']:>4} failed: {row['error']}")
            continue
        lines.append(f"{row['budget']:<16} {row['seed']:>4} {row['accuracy']:>8.4f} {row['test_accuracy']:>8.4f} "
                     f"{row['cost'] / row['limit']:>13.4f} {row['size_vs_fp32']:>10.1f}x  {row['bits_per_layer']}")
    return "\n".join(lines)
