"""The one run pipeline of `evo search` and every `evo baseline`:

    prepare (no Ray; raises before anything is written) -> start the cluster -> run.yaml
    -> the method's screening -> final fine-tune and the one test-split evaluation
    -> compact the tables -> the final table

A method (``evo.methods``) supplies its screening step and, where it differs, its own
preparation, final step and table; everything else is done here, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from evo.core.genome import genome_key
from evo.core.trial import RunContext, outcome, trial_config, trial_row
from evo.runs.parquet import PartWriter, compact, write_yaml_atomic
from evo.runs.folder import versions
from evo.runs.resume import TRAININGS_LOG  # one line per finished training, written by the trials
from evo.runs.schema import GENERATION_SCHEMA, TRIAL_SCHEMA
from evo.runs.summary import average_repeats, repeat_of

TABLES = {"trials.parquet": TRIAL_SCHEMA, "generations.parquet": GENERATION_SCHEMA, "pareto.parquet": TRIAL_SCHEMA}


@dataclass
class Screened:
    """What a method's screening hands the final step: every screened result as (genome, accuracy,
    cost, violation[, generation]), extra (label, genome) pairs to fine-tune (evo: its uniform
    reference), facts for run.yaml, the generations (evo), final rows a method's own trials
    already produced (ADMM), and ``refine``: what becomes of each front policy chosen for the
    final fine-tune (evo's ``final_fill``; None keeps it as screened)."""

    evaluated: list[tuple] = field(default_factory=list)
    finished: list[dict] = field(default_factory=list)
    extra_finals: list[tuple[str, tuple]] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    generations: list[dict] = field(default_factory=list)
    refine: Callable[[tuple], tuple] | None = None


@dataclass
class Session:
    """One run in progress: the prepared inputs, the trainable, the trial slots and the log."""

    method: str
    prep: object  # evo.runs.prepare.Prepared, or the method's own
    slots: int
    resources: dict
    resume: bool
    log: Callable
    trainable: object = None

    @property
    def run_dir(self):
        return self.prep.cfg.run_dir

    @property
    def context(self) -> RunContext:
        """The run's own columns of every row (ADMM rows name their budget and seed themselves)."""
        cfg, target = self.prep.cfg, getattr(self.prep, "target", None)
        return RunContext(method=self.method, seed=getattr(cfg, "seed", None),
                          target=target.name if target is not None else cfg.target, budget=getattr(cfg, "budget", None))


class Method(Protocol):
    """A method of the pipeline (see evo.methods)."""

    name: str

    def prepare(self, cfg, *, resume: bool, log: Callable): ...

    def needs_cluster(self, prep, *, resume: bool) -> bool: ...

    def metadata(self, prep) -> dict: ...

    def trainable(self, prep): ...

    def screen(self, session: Session) -> Screened: ...

    def final(self, session: Session, screened: Screened) -> list[dict]: ...

    def table(self, session: Session, finals: list[dict]) -> str: ...


@dataclass
class RunOutcome:
    run_dir: object
    final_rows: list[dict]
    generations: list[dict]


def run_pipeline(method: Method, cfg, *, resume: bool = False, log: Callable = print) -> RunOutcome:
    from evo.tune.cluster import start_cluster

    prep = method.prepare(cfg, resume=resume, log=log)  # raises before anything is written or Ray starts
    run_dir = cfg.run_dir
    # Ray and the cluster are checked before the run folder exists: a failure here leaves nothing written.
    resources, slots = start_cluster(cfg, run_dir, log=log) if method.needs_cluster(prep, resume=resume) else ({}, 0)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = method.metadata(prep)
    if not resume:
        write_yaml_atomic(run_dir / "run.yaml", meta)
    session = Session(method=method.name, prep=prep, slots=slots, resources=resources, resume=resume, log=log,
                      trainable=method.trainable(prep))
    screened = method.screen(session)
    if screened.stats:
        write_yaml_atomic(run_dir / "run.yaml", {**meta, "search_stats": screened.stats})
    finals = method.final(session, screened)
    for name, schema in TABLES.items():
        compact(run_dir / name, schema)
    log(method.table(session, finals))
    log(f"results: {run_dir}")
    return RunOutcome(run_dir=run_dir, final_rows=finals, generations=screened.generations)


def run_metadata(method: str, prep) -> dict:
    """run.yaml of a search or baseline run (the same keys for every method, so `evo compare`
    reads every run alike)."""
    return {"method": method, "config": prep.cfg.to_dict(), "versions": versions(), "started_at": time.time(),
            "budget_limit": prep.limit, "budget_metric": prep.budget.metric, "target": prep.target.name,
            "base_model": {"val_accuracy": prep.base_val_accuracy, "test_accuracy": prep.base_test_accuracy,
                           "epochs": prep.base_epochs},
            "layers": [s.to_dict() for s in prep.specs]}


def trial_settings(prep):
    """The policy trial's settings for a run: every trial of every method trains alike."""
    from trainables.policy_trial import TrialSettings

    cfg = prep.cfg
    return TrialSettings(
        model_ref=prep.model_ref, target=cfg.target, budget_metric=prep.budget.metric, budget_limit=prep.limit,
        fine_tune_steps=cfg.fine_tune_steps, final_steps=cfg.final_steps, batch_size=cfg.batch_size, lr=cfg.lr,
        seed=cfg.seed, scale_lr=cfg.scale_lr, distill_temperature=cfg.distill_temperature,
        distill_weight=cfg.distill_weight, models_dir=str(cfg.run_dir / "models"),
        trainings_log=str(cfg.run_dir / TRAININGS_LOG))


def make_trainable(prep):
    """The policy trial with the run's settings and its inputs in the object store."""
    from evo.tune.tuner import policy_trainable
    from hardware.specs import specs_to_json

    cfg = prep.cfg
    return policy_trainable(data=prep.splits, base_state=prep.base_state, specs_json=specs_to_json(prep.specs),
                            settings=trial_settings(prep), cpus=cfg.cpus_per_trial, gpus=cfg.gpus_per_trial,
                            teacher_logits=teacher_logits(prep) if cfg.distill_weight > 0 else None)


def teacher_logits(prep):
    """The float base model's logits on every training example, computed once on the driver and
    shared by every trial through the object store (numpy, like the data arrays)."""
    import torch

    from trainables.distill import teacher_logits as compute
    from trainables.user_model import build_from_reference

    model = build_from_reference(prep.model_ref)
    model.load_state_dict(prep.base_state)
    return compute(model, torch.from_numpy(prep.splits.train_x)).numpy()


def run_policy_grid(session: Session, items: list[tuple], *, phase: str,
                    generations: dict[str, int] | None = None) -> list[dict]:
    """Evaluate (label, genome) or (label, genome, repeat) items as one Tune grid; append their
    rows to trials.parquet."""
    from ray import tune

    from evo.tune.tuner import build_tuner

    prep, cfg = session.prep, session.prep.cfg
    generations = generations or {}
    configs = [trial_config(item[1], prep.space.decode(item[1]).to_dict(), phase=phase, label=item[0],
                            generation=generations.get(genome_key(item[1])),
                            repeat=item[2] if len(item) > 2 else None) for item in items]
    tuner = build_tuner(session.trainable, run_dir=session.run_dir, experiment=f"{phase}-{int(time.time())}",
                        search_alg=None, param_space={"item": tune.grid_search(configs)}, max_concurrent=session.slots,
                        max_failures=cfg.max_failures, verbose=cfg.verbose, num_samples=1)
    rows = [trial_row(session.context, result.config["item"], result.metrics,
                      outcome(result.metrics, result.error is not None), trial_id=(result.metrics or {}).get("trial_id"),
                      **({"error": str(result.error)} if result.error is not None else {}))
            for result in tuner.fit()]
    PartWriter(session.run_dir / "trials.parquet", TRIAL_SCHEMA).append(rows)
    return rows


def final_candidates(evaluated: list[tuple], top: int) -> list[tuple]:
    """The ``top`` most accurate genomes of the screened Pareto front (validation accuracy)."""
    from evo.core.selection import pareto_front

    return [tuple(e[0]) for e in sorted(pareto_front(evaluated), key=lambda e: -e[1])[:top]]


def log_filled(session: Session, genome: tuple, filled: tuple) -> None:
    from evo.runs.summary import describe_policy

    prep = session.prep
    before, after = (describe_policy(prep.space.decode(g).to_json(), prep.space.fixed_pruning) for g in (genome, filled))
    session.log(f"final: filled to the budget ({prep.cost_fn(genome) / prep.limit:.3f} -> "
                f"{prep.cost_fn(filled) / prep.limit:.3f} of it): {before} -> {after}")


def final_phase(session: Session, screened: Screened) -> list[dict]:
    """Fine-tune the most accurate policies of the screened front (and the method's extra ones)
    final_steps, ``final_seeds`` times each (repeat 0, 1, ...), then evaluate each fine-tune once on
    the test split; rows also go to pareto.parquet. A policy chosen twice (on the front and the
    best uniform one) is trained and tested once per seed. ``screened.refine`` (evo's final_fill)
    turns a front policy into the one fine-tuned, labelled "pareto, filled" when it changed it."""
    cfg = session.prep.cfg
    chosen: dict[tuple, str] = {}
    for genome in final_candidates(screened.evaluated, cfg.final_top):
        refined = screened.refine(genome) if screened.refine else genome
        if refined != genome:
            log_filled(session, genome, refined)
        chosen.setdefault(refined, "pareto" if refined == genome else "pareto, filled")
    for label, genome in screened.extra_finals:
        chosen[genome] = f"{chosen[genome]}, {label}" if genome in chosen else label
    if not chosen:
        session.log(f"{session.method}: no feasible policy was screened; nothing to fine-tune on the test split")
        return []
    seeds = cfg.final_seeds
    session.log(f"final: fine-tuning {len(chosen)} policies for {cfg.final_steps} steps"
                f"{f' with {seeds} seeds each' if seeds > 1 else ''}, then one test-split evaluation each")
    generations = {genome_key(e[0]): e[4] for e in screened.evaluated if len(e) > 4}
    rows = run_policy_grid(session, [(label, g, repeat) for g, label in chosen.items() for repeat in range(seeds)],
                           phase="final", generations=generations)
    mean_val = {key: row["accuracy"] for key, row in ((r["genome_key"], r) for r in average_repeats(rows))}
    rows.sort(key=lambda r: (not r["label"].startswith("pareto"), -(mean_val.get(r["genome_key"]) or 0.0),
                             r["genome_key"], repeat_of(r)))
    PartWriter(session.run_dir / "pareto.parquet", TRIAL_SCHEMA).append(rows)
    return rows
