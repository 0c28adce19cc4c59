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
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ray.tune import Callback

from evo.core.trial import WORKER_FAILURE, Outcome, RunContext, outcome, trial_row
from evo.runs.config import RunSettings
from evo.runs.schema import TRIAL_SCHEMA
from evo.runs.parquet import PartWriter, read_table
from evo.runs.folder import versions
from hardware.budget import parse_budget, violation
from hardware.checks import check_int
from hardware.policy import Policy, check_bits
from trainables.knapsack import CONSTRAINED_METRICS, ADMMSettings, BudgetConstraint, check_quantizer, policy_from

METHOD = "admm"
NOTES = ("Yang et al. (CVPR 2020) constrain model size (size_bits, their count: kept weights x bits); a BOPs "
         "budget is our extension (a weight costs b_w * b_a * H*W of its layer, b_a fixed). Bit widths are "
         "2..8: the policy vocabulary has no 1-bit weights.")


@dataclass(frozen=True)
class ADMMConfig(RunSettings):
    """`evo baseline admm`'s settings: one trial per budget x seed.

    Args:
        budgets: budget texts on size (``size=1/50``: Yang et al.'s count) or BOPs (our extension).
        seeds: seeds 0..seeds-1 per budget.
        admm: the ADMM recipe (trainables.admm.settings.ADMMSettings).
        activation_bits: fixed activation bits of a BOPs budget (size budgets keep them float).
        target: the hardware target pricing the final policies.
        the model, the data, Ray and the run folder: see evo.runs.config.RunSettings.
    """

    budgets: tuple[str, ...] = ("size=1/50",)
    seeds: int = 3
    admm: ADMMSettings = field(default_factory=ADMMSettings)
    activation_bits: int = 8  # b_a of BOPs budgets
    target: str = "bitserial"
    max_failures: int = 1
    name: str = "admm"

    def __post_init__(self) -> None:
        from hardware.targets import load_target

        super().__post_init__()
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
        check_int("seeds", self.seeds, minimum=1)  # runs use seeds 0..seeds-1
        check_quantizer(self.admm.quantizer)
        check_bits(self.activation_bits, "activation_bits")
        load_target(self.target)

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
    model_ref: dict = field(default_factory=dict)  # trainables.user_model reference of the model
    todo: list[dict] = field(default_factory=list)  # the runs without a finished final row


def prepare_admm(cfg: ADMMConfig, *, resume: bool, log: Callable = print) -> PreparedADMM:
    """Everything that can fail before Ray starts; only the pretraining cache is written."""
    from evo.runs.prepare import base_model, check_address, check_run_dir, load_inputs
    from hardware.budget import budget_limit
    from hardware.targets import load_target

    check_address(cfg.address)  # an unreachable cluster fails in seconds, before the data and the base model
    saved = check_run_dir(cfg, resume)  # reads cfg.run_dir and cfg.to_dict(); the run.yaml on resume
    target = load_target(cfg.target)
    inputs = load_inputs(cfg, log=log)
    splits, specs = inputs.splits, inputs.specs
    runs = []
    for text in cfg.budgets:
        budget = parse_budget(text)
        limit = budget_limit(budget, specs, target)
        BudgetConstraint.from_specs(specs, budget.metric, limit, activation_bits=cfg.activation_bits
                                    ).check_reachable(text)
        runs += [{"budget": text, "metric": budget.metric, "limit": limit, "seed": seed} for seed in range(cfg.seeds)]
    base = base_model(cfg, inputs, saved=saved, log=log)
    return PreparedADMM(cfg=cfg, splits=splits, base_state=base.state_dict, specs=specs, runs=runs,
                        base_accuracy={"val_accuracy": base.val_accuracy, "test_accuracy": base.test_accuracy,
                                       "epochs": base.epochs},
                        model_ref=inputs.model_ref)


def finished_runs(run_dir: Path) -> set[tuple[str, int]]:
    """(budget, seed) pairs that already have a successful final row."""
    table = read_table(run_dir / "trials.parquet", TRIAL_SCHEMA)
    if table.num_rows == 0:
        return set()
    rows = table.select(["method", "phase", "status", "budget", "seed"]).to_pylist()
    return {(r["budget"], r["seed"]) for r in rows if r["method"] == METHOD and r["phase"] == "final"
            and r["status"] == "ok"}


class ADMM:
    """The ADMM baseline as a method of the run pipeline: its own preparation (several budgets and
    seeds per run), one Ray Tune trial per budget x seed that screens, fine-tunes and tests (so the
    final step only collects those rows), and its own table."""

    name = METHOD

    def prepare(self, cfg: ADMMConfig, *, resume: bool, log: Callable) -> PreparedADMM:
        prep = prepare_admm(cfg, resume=resume, log=log)
        done = finished_runs(cfg.run_dir) if resume else set()
        prep.todo = [r for r in prep.runs if (r["budget"], r["seed"]) not in done]
        return prep

    def needs_cluster(self, prep: PreparedADMM, *, resume: bool) -> bool:
        return bool(prep.todo)  # a resumed run with nothing left does not start Ray

    def metadata(self, prep: PreparedADMM) -> dict:
        cfg = prep.cfg
        return {"method": METHOD, "config": cfg.to_dict(), "versions": versions(), "started_at": time.time(),
                "target": cfg.target, "notes": NOTES, "base_model": prep.base_accuracy,
                "budgets": [{"text": r["budget"], "metric": r["metric"], "limit": r["limit"]}
                            for r in prep.runs if r["seed"] == 0],
                "layers": [s.to_dict() for s in prep.specs]}

    def trainable(self, prep: PreparedADMM):
        from ray import tune

        from evo.runs.pipeline import TRAININGS_LOG
        from hardware.specs import specs_to_json
        from trainables.admm_trial import ADMMTrialSettings, admm_trial

        cfg = prep.cfg
        settings = ADMMTrialSettings(model_ref=prep.model_ref, target=cfg.target, admm=cfg.admm,
                                     activation_bits=cfg.activation_bits,
                                     trainings_log=str(cfg.run_dir / TRAININGS_LOG))
        return tune.with_resources(
            tune.with_parameters(admm_trial, data=prep.splits, base_state=prep.base_state,
                                 specs_json=specs_to_json(prep.specs), settings=settings),
            {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})

    def screen(self, session):
        from evo.runs.pipeline import Screened

        prep = session.prep
        session.log(f"admm: {len(prep.todo)} trial(s) to run ({len(prep.runs) - len(prep.todo)} already finished); "
                    f"base model validation accuracy {prep.base_accuracy['val_accuracy']:.4f}")
        rows = _run_trials(session) if prep.todo else []
        return Screened(finished=[r for r in rows if r["phase"] == "final"])

    def final(self, session, screened) -> list[dict]:
        return screened.finished  # each ADMM trial fine-tuned and tested its own final policy

    def table(self, session, finals: list[dict]) -> str:
        return format_results(finals)


def _run_trials(session) -> list[dict]:
    from ray import tune

    from evo.tune.tuner import build_tuner

    prep, cfg = session.prep, session.prep.cfg
    session.log(f"admm: {len(prep.todo)} trial(s), {session.slots} at once, {cfg.admm.epochs} ADMM + "
                f"{cfg.admm.fine_tune_epochs} fine-tune epochs each, quantizer {cfg.admm.quantizer}")
    rows = ADMMRowStreamer(prep)
    build_tuner(session.trainable, run_dir=cfg.run_dir, experiment=f"admm-{int(time.time())}", search_alg=None,
                param_space={"run": tune.grid_search(prep.todo)}, max_concurrent=session.slots,
                max_failures=cfg.max_failures, verbose=cfg.verbose, num_samples=1, callbacks=[rows]).fit()
    return rows.rows


class ADMMRowStreamer(Callback):
    """Writes each ADMM trial's rows (and its policy file) as the trial ends, so a killed driver
    keeps every finished budget x seed and ``--resume`` runs only the others."""

    def __init__(self, prep: PreparedADMM):
        self.prep, self.rows = prep, []
        self.writer = PartWriter(prep.cfg.run_dir / "trials.parquet", TRIAL_SCHEMA)

    def on_trial_complete(self, iteration: int, trials, trial, **info) -> None:
        self._write(result_rows(self.prep, trial.config["run"], dict(trial.last_result or {}), None))

    def on_trial_error(self, iteration: int, trials, trial, **info) -> None:
        self._write(result_rows(self.prep, trial.config["run"], {}, WORKER_FAILURE))

    def _write(self, rows: list[dict]) -> None:
        self.writer.append(rows)
        self.rows += rows
        for row in rows:
            if row["phase"] == "final" and row["status"] == "ok":
                Policy.from_dict(json.loads(row["policy"])).save(self.prep.cfg.run_dir / "policies" /
                                                                 policy_file_name(row))


def policy_file_name(row: dict) -> str:
    return f"{budget_slug(row['budget'])}-seed{row['seed']}.yaml"


def result_rows(prep: PreparedADMM, run: dict, metrics: dict, error) -> list[dict]:
    """The final row and the per-epoch rows of one trial."""
    context = RunContext(method=METHOD, seed=run["seed"], target=prep.cfg.target, budget=run["budget"])
    history = json.loads(metrics.pop("history", "[]") or "[]")
    result_outcome = outcome(metrics, error is not None)
    if not result_outcome.failed and metrics.get("phase") != "final":
        result_outcome = Outcome(True, "the trial ended before its final report", math.nan)
    if not result_outcome.failed and metrics.get("violation", 1.0) > 0:  # never expected: run_admm checks it
        result_outcome = Outcome(True, f"final policy breaks the budget (violation {metrics['violation']:.3g})",
                                 math.nan)
    for key in ("phase", "budget", "seed"):
        metrics.pop(key, None)
    final_config = {"phase": "final", "label": run["budget"]}
    if not result_outcome.failed and "policy" in metrics:
        final_config["policy"] = json.loads(metrics.pop("policy"))
    metrics.pop("policy", None)
    final = trial_row(context, final_config, metrics, result_outcome,
                      **({"error": str(error)} if error is not None else {}))
    activation_bits = 32 if run["metric"] == "size_bits" else prep.cfg.activation_bits
    epochs = [trial_row(context, {"phase": "epoch", "label": run["budget"],
                                  "policy": policy_from(prep.specs, record["nnz_per_layer"], record["bits_per_layer"],
                                                        activation_bits).to_dict()},
                        {**record, "violation": violation(record["cost"], record["limit"])}, Outcome(False, "", math.nan),
                        trial_id=final["trial_id"])
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
