"""`evo search`: prepare (no Ray), run the generations as Ray Tune trials, fine-tune the Pareto
policies and the best uniform policy longer, evaluate them once on the test split, write the
run folder and print the front."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

from evo.config import SearchConfig
from evo.prepare import Prepared, prepare
from evo.recorder import SearchRecorder, load_saved
from evo.results import TRIAL_SCHEMA, GENERATION_SCHEMA, PartWriter, compact, versions, write_yaml_atomic

PARETO_SCHEMA = TRIAL_SCHEMA


@dataclass
class SearchOutcome:
    run_dir: object
    final_rows: list[dict]
    generations: list[dict]


def run_search(cfg: SearchConfig, *, resume: bool = False, log: Callable = print) -> SearchOutcome:
    from evo.tuner import build_tuner, describe_slots, start_cluster

    prep = prepare(cfg, resume=resume, log=log)  # raises before anything is written or Ray starts
    run_dir = prep.run_dir
    # Ray and the cluster are checked before the run folder exists: a failure here leaves nothing written.
    resources, slots = start_cluster(cfg, run_dir, log=log)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_yaml_atomic(run_dir / "run.yaml", run_metadata("evo", prep))

    from evo.metrics import MetricsListener
    from evo.population import Population
    from evo.recorder import FanOut
    from evo.searcher import EvoSearcher

    loaded = load_saved(run_dir) if resume else None
    saved = None
    if loaded is None:
        population = Population(space=prep.space, cost_fn=prep.cost_fn, limit=prep.limit,
                                population_size=cfg.population, generations=cfg.generations, seed=cfg.seed,
                                crossover_prob=cfg.crossover_prob)
    else:  # generation 0 is not bred again just to be replaced by the saved state
        saved, logged = loaded
        population = Population.from_state(saved["population"], cost_fn=prep.cost_fn)
        population.replay([(entry["genome"], math.nan if entry["accuracy"] is None else entry["accuracy"],
                            prep.cost_fn(tuple(entry["genome"])), entry["failed"]) for entry in logged])
    recorder = SearchRecorder(run_dir, method="evo", seed=cfg.seed, target=prep.target.name, budget=cfg.budget,
                              decode=prep.space.decode, log=log)
    metrics = MetricsListener.start(cfg.name)  # the Ray dashboard's view of the search
    searcher = EvoSearcher(population, decode=prep.space.decode, cost_fn=prep.cost_fn,
                           listener=FanOut(recorder, metrics))
    recorder.state_fn = searcher.get_state
    experiment = "tune"
    if saved is not None:
        recorder.restore_counts(saved.get("recorder", {}))
        recorder.catch_up(searcher.population.generation_stats)
        metrics.restore(trials_finished=recorder.trials_total, trials_failed=recorder.failed_total,
                        generation_stats=searcher.population.generation_stats)
        experiment = f"tune-resume-{len(list(run_dir.glob('tune-resume-*'))) + 1}"
        log(f"resuming: {recorder.trials_total} trials already evaluated, "
            f"{len(searcher.population.generation_stats)} generations closed")
    recorder.save_state()  # the state --resume starts from (after a resume: with the log folded in)

    trainable = make_trainable(prep)
    log(f"search: population {cfg.population}, {cfg.generations} generations, "
        f"{describe_slots(slots, resources, cfg.cpus_per_trial, cfg.gpus_per_trial)}, "
        f"{cfg.fine_tune_steps} fine-tune steps per trial")
    if not searcher.population.is_finished:
        tuner = build_tuner(trainable, run_dir=run_dir, experiment=experiment, search_alg=searcher,
                            max_concurrent=slots, max_failures=cfg.max_failures, verbose=cfg.verbose)
        tuner.fit()
    if not searcher.population.is_finished:
        raise RuntimeError(f"the search stopped before its last generation; continue it with --resume "
                           f"(run folder {run_dir})")
    recorder.save_state()

    final_rows = final_phase(prep, searcher.population, trainable, slots=slots, log=log)
    for name, schema in (("trials.parquet", TRIAL_SCHEMA), ("generations.parquet", GENERATION_SCHEMA),
                         ("pareto.parquet", PARETO_SCHEMA)):
        compact(run_dir / name, schema)
    from evo.summary import format_final_table

    log(format_final_table(final_rows, prep))
    log(f"results: {run_dir}")
    return SearchOutcome(run_dir=run_dir, final_rows=final_rows, generations=list(searcher.population.generation_stats))


def run_metadata(method: str, prep: Prepared) -> dict:
    """run.yaml of a search or baseline run (the same keys for every method, so `evo compare`
    reads every run alike)."""
    return {"method": method, "config": prep.cfg.to_dict(), "versions": versions(), "started_at": time.time(),
            "budget_limit": prep.limit, "budget_metric": prep.budget.metric, "target": prep.target.name,
            "base_model": {"val_accuracy": prep.base_val_accuracy, "test_accuracy": prep.base_test_accuracy},
            "layers": [s.to_dict() for s in prep.specs]}


def make_trainable(prep: Prepared):
    """The policy trial with the run's settings; the search and the baselines train alike."""
    from evo.tuner import policy_trainable
    from hardware.specs import specs_to_json
    from trainables.policy_trial import TrialSettings

    cfg = prep.cfg
    settings = TrialSettings(
        model=cfg.model, image_shape=tuple(prep.splits.image_shape), num_classes=prep.splits.num_classes,
        target=cfg.target, budget_metric=prep.budget.metric, budget_limit=prep.limit,
        fine_tune_steps=cfg.fine_tune_steps, final_steps=cfg.final_steps, batch_size=cfg.batch_size, lr=cfg.lr,
        seed=cfg.seed)
    return policy_trainable(data=prep.splits, base_state=prep.base_state, specs_json=specs_to_json(prep.specs),
                            settings=settings, cpus=cfg.cpus_per_trial, gpus=cfg.gpus_per_trial)


def best_uniform(prep: Prepared, population, trainable, *, slots: int, log: Callable) -> tuple | None:
    """The best uniform policy within budget by validation accuracy, each fine-tuned as one search
    trial. Generation 0 evaluates them all (evo.repair.initial_genomes); any the search did not
    evaluate (a resumed older run) are screened here."""
    from evo.genome import genome_key
    from evo.repair import least_pruned_uniforms

    candidates = least_pruned_uniforms(prep.space, prep.cost_fn, prep.limit)
    if not candidates:
        return None
    known = {tuple(r["genome"]): r["accuracy"] for r in population.history if not r["failed"]}
    todo = [g for g in candidates if g not in known]
    if todo:
        log(f"uniform baseline: screening {len(todo)} more uniform policies within budget "
            f"({len(candidates) - len(todo)} were evaluated by the search)")
        rows = run_policy_grid(prep, trainable, [("uniform screen", g) for g in todo], phase="uniform",
                               slots=slots, history=population.history)
        known.update({tuple(r["genome"]): r["accuracy"] for r in rows if r["status"] == "ok"})
    scored = [(known[g], g) for g in candidates if g in known]
    if not scored:
        return None
    accuracy, genome = max(scored)
    log(f"best uniform policy within budget: {genome_key(genome)} (validation accuracy {accuracy:.4f})")
    return genome


def final_phase(prep: Prepared, population, trainable, *, slots: int, log: Callable) -> list[dict]:
    """Fine-tune the most accurate Pareto policies and the best uniform policy for final_steps,
    then evaluate each once on the test split."""
    front = sorted(population.front(), key=lambda r: -r["accuracy"])[:prep.cfg.final_top]
    chosen = [("pareto", tuple(r["genome"])) for r in front]
    uniform = best_uniform(prep, population, trainable, slots=slots, log=log)
    if uniform is not None:
        chosen.append(("best uniform", uniform))
    if not chosen:
        log("no feasible policy was found; nothing to fine-tune on the test split")
        return []
    log(f"final: fine-tuning {len(chosen)} policies for {prep.cfg.final_steps} steps, then one test-split "
        "evaluation each")
    rows = run_policy_grid(prep, trainable, chosen, phase="final", slots=slots, history=population.history)
    rows.sort(key=lambda r: (r["label"] != "pareto", -(r.get("test_accuracy") or 0.0)))
    PartWriter(prep.run_dir / "pareto.parquet", PARETO_SCHEMA).append(rows)
    return rows


def run_policy_grid(prep: Prepared, trainable, items: list[tuple[str, tuple]], *, phase: str, slots: int,
                    history: list[dict], method: str = "evo") -> list[dict]:
    """Evaluate (label, genome) pairs as one Tune grid; append their rows (``method`` column:
    the search or baseline that asked) to trials.parquet."""
    from ray import tune

    from evo.genome import genome_key
    from evo.tuner import build_tuner

    configs = [{"phase": phase, "label": label, "genome": genome_key(g), "policy": prep.space.decode(g).to_dict()}
               for label, g in items]
    genomes = {genome_key(g): g for _, g in items}
    generation = {genome_key(r["genome"]): r["generation"] for r in history}
    tuner = build_tuner(trainable, run_dir=prep.run_dir, experiment=f"{phase}-{int(time.time())}", search_alg=None,
                        param_space={"item": tune.grid_search(configs)}, max_concurrent=slots,
                        max_failures=prep.cfg.max_failures, verbose=prep.cfg.verbose, num_samples=1)
    rows = []
    for result in tuner.fit():
        cfg = result.config["item"]
        metrics = {k: v for k, v in (result.metrics or {}).items() if k != "config"}
        failed = result.error is not None or bool(metrics.get("failed"))
        error = str(result.error) if result.error else (metrics.get("error") or None)
        rows.append({**metrics, "method": method, "phase": phase, "label": cfg["label"], "genome_key": cfg["genome"],
                     "genome": list(genomes[cfg["genome"]]), "policy": json.dumps(cfg["policy"]),
                     "status": "failed" if failed else "ok", "error": error,
                     "generation": generation.get(cfg["genome"]), "seed": prep.cfg.seed,
                     "target": prep.target.name, "budget": prep.cfg.budget, "finished_at": time.time()})
    PartWriter(prep.run_dir / "trials.parquet", TRIAL_SCHEMA).append(rows)
    return rows
