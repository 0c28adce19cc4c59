"""`evo baseline uniform|random|optuna`: search baselines under the conditions of `evo search`.

Each one reuses ``evo.prepare.prepare`` (same data, validation split, base model, layer specs,
budget and genome space) and the same policy trainable (same fine-tune steps per trial, same
``final_steps`` before the one test-split evaluation), and writes a run folder of the same
schema: run.yaml (``method``), trials.parquet (phase "search" for screened trials, "final" for
the fine-tuned ones) and pareto.parquet (the final rows). No over-budget policy is trained:

- uniform: every uniform policy of the space within the budget (the least-pruned one per bit
  pair, ``evo.repair.least_pruned_uniforms``), screened as one Tune grid.
- random: Tune's built-in ``BasicVariantGenerator`` over as many samples as evo search trains;
  each sample is a seeded random genome passed through ``evo.repair.repair``, the repair evo
  applies to its offspring, and drawn again when it repeats an earlier sample.
- optuna: Tune's ``OptunaSearch`` with Optuna's constrained ``NSGAIISampler`` over one
  categorical index per gene. Optuna must be told the point it asked, so an over-budget
  suggestion (or a repeat of a finished genome) is told back at once, before any trial
  starts: accuracy 0 at its cost with constraint cost/limit - 1 > 0 (a repeat: its earlier
  result). As many trials as evo search trains are trained; run.yaml counts the rest.

Then, as in `evo search`, the most accurate policies of the screened Pareto front are
fine-tuned ``final_steps`` and evaluated once on the test split.
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from typing import Callable

from ray.tune import Callback

from evo.config import SearchConfig
from evo.genome import genome_from_key, genome_key
from evo.prepare import Prepared, prepare
from evo.results import TRIAL_SCHEMA, PartWriter, compact, write_yaml_atomic
from evo.repair import least_pruned_uniforms
from evo.search import make_trainable, run_metadata, run_policy_grid
from evo.searcher import classify

METHODS = ("uniform", "random", "optuna")
OPTUNA_MISSING = "optuna is not installed; `evo baseline optuna` needs it: pip install 'evo[optuna]'"
REDRAWS = 100  # random search: draws per sample before a repeated genome is accepted


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"baseline method {method!r} is unknown; valid choices: {list(METHODS)}")
    if method == "optuna" and importlib.util.find_spec("optuna") is None:
        raise ValueError(OPTUNA_MISSING)


def run_baseline(method: str, cfg: SearchConfig, *, log: Callable = print) -> list[dict]:
    """Screen, fine-tune the front for final_steps, evaluate on test once; return the final rows."""
    from evo.summary import format_final_table
    from evo.tuner import start_cluster

    check_method(method)
    prep = prepare(cfg, log=log)  # raises before anything is written or Ray starts
    _, slots = start_cluster(cfg, prep.run_dir, log=log)  # before the run folder exists, as in evo search
    prep.run_dir.mkdir(parents=True, exist_ok=True)
    meta = run_metadata(method, prep)
    write_yaml_atomic(prep.run_dir / "run.yaml", meta)
    trainable = make_trainable(prep)
    screened, stats = SCREENS[method](prep, trainable, slots, log)
    write_yaml_atomic(prep.run_dir / "run.yaml", {**meta, "search_stats": stats})
    finals = final_front(prep, method, screened, trainable, slots=slots, log=log)
    for name in ("trials.parquet", "pareto.parquet"):
        compact(prep.run_dir / name, TRIAL_SCHEMA)
    table = format_final_table(finals, prep).splitlines()
    log("\n".join(table[:3 + len(finals)]))  # the table without evo search's evolved-vs-uniform line
    log(f"results: {prep.run_dir}")
    return finals


def item_config(space, genome: tuple[int, ...]) -> dict:
    """What policy_trial reads under config["item"]."""
    return {"phase": "search", "genome": genome_key(genome), "policy": space.decode(genome).to_dict()}


# -- the three screens: (prep, trainable, slots, log) -> (search rows, stats for run.yaml) ---------
def screen_uniform(prep: Prepared, trainable, slots: int, log: Callable) -> tuple[list[dict], dict]:
    candidates = least_pruned_uniforms(prep.space, prep.cost_fn, prep.limit)
    log(f"uniform: screening {len(candidates)} uniform policies within budget, "
        f"{prep.cfg.fine_tune_steps} fine-tune steps each")
    rows = run_policy_grid(prep, trainable, [("uniform", g) for g in candidates], phase="search", slots=slots,
                           history=[], method="uniform")
    return rows, {"trials": len(rows)}


def repaired_random_sampler(space, cost_fn: Callable, limit: float, rng: random.Random) -> Callable:
    """A ``tune.sample_from`` function: a random genome, repaired into the budget, new if possible.
    A closure rather than an object: Tune deep-copies the spec per sample, which copies objects
    (and their RNG state) but shares functions, so every sample advances the one ``rng``."""
    from evo.repair import repair

    seen: set[tuple[int, ...]] = set()

    def draw(spec=None) -> dict:
        for _ in range(REDRAWS):
            genome = repair(space.random_genome(rng), space, cost_fn, limit)
            if genome is not None and genome not in seen:
                break
        seen.add(genome)
        return item_config(space, genome)

    return draw


def search_trials(prep: Prepared) -> int:
    """The number of trials `evo search` trains with the same settings (evo.population.planned_trials)."""
    from evo.population import planned_trials

    return planned_trials(prep.space, prep.cost_fn, prep.limit, prep.cfg.population, prep.cfg.generations)


def _tune_screen(prep: Prepared, trainable, slots: int, method: str, **tuner_args) -> list[dict]:
    """As many trials through Tune as `evo search` trains; each row is written as its trial ends."""
    from evo.tuner import build_tuner

    cfg = prep.cfg
    rows = RowStreamer(prep, method)
    build_tuner(trainable, run_dir=prep.run_dir, experiment=f"{method}-{int(time.time())}", max_concurrent=slots,
                max_failures=cfg.max_failures, verbose=cfg.verbose, num_samples=search_trials(prep),
                callbacks=[rows], **tuner_args).fit()
    return rows.rows


def screen_random(prep: Prepared, trainable, slots: int, log: Callable) -> tuple[list[dict], dict]:
    from ray import tune

    cfg = prep.cfg
    sampler = repaired_random_sampler(prep.space, prep.cost_fn, prep.limit, random.Random(cfg.seed))
    log(f"random: {search_trials(prep)} repaired random policies (as many as evo search trains), {slots} at once")
    rows = _tune_screen(prep, trainable, slots, "random", search_alg=None,
                        param_space={"item": tune.sample_from(sampler)})
    return rows, {"trials": len(rows)}


def screen_optuna(prep: Prepared, trainable, slots: int, log: Callable) -> tuple[list[dict], dict]:
    cfg = prep.cfg
    from evo.baseline_optuna import AffordableOptuna

    searcher = AffordableOptuna(prep.space, prep.cost_fn, prep.limit, population=cfg.population, seed=cfg.seed)
    log(f"optuna: NSGA-II (population {cfg.population}, seed {cfg.seed}), {search_trials(prep)} "
        f"trials, {slots} at once")
    rows = _tune_screen(prep, trainable, slots, "optuna", search_alg=searcher)
    log(f"optuna: {searcher.over_budget} over-budget and {searcher.repeats} repeated suggestions told back "
        "without training")
    return rows, {"trials": len(rows), "over_budget_suggestions": searcher.over_budget,
                  "repeated_suggestions": searcher.repeats}


SCREENS = {"uniform": screen_uniform, "random": screen_random, "optuna": screen_optuna}


class RowStreamer(Callback):
    """Appends each finished trial to trials.parquet as it ends (a killed driver keeps them,
    and ``finished_at`` orders the hypervolume-vs-trials curve)."""

    def __init__(self, prep: Prepared, method: str):
        self.writer = PartWriter(prep.run_dir / "trials.parquet", TRIAL_SCHEMA)
        self.method, self.seed, self.target, self.budget = method, prep.cfg.seed, prep.target.name, prep.cfg.budget
        self.rows: list[dict] = []

    def on_trial_complete(self, iteration: int, trials, trial, **info) -> None:
        self._write(trial, trial.last_result, error=False)

    def on_trial_error(self, iteration: int, trials, trial, **info) -> None:
        self._write(trial, None, error=True)

    def _write(self, trial, result: dict | None, error: bool) -> None:
        item = trial.config["item"]
        failed, message, _ = classify(result, error)
        metrics = {k: v for k, v in (result or {}).items() if k != "config"}
        row = {**metrics, "method": self.method, "phase": "search", "trial_id": trial.trial_id,
               "genome": list(genome_from_key(item["genome"])), "genome_key": item["genome"],
               "policy": json.dumps(item["policy"]), "status": "failed" if failed else "ok",
               "error": message or None, "seed": self.seed, "target": self.target, "budget": self.budget,
               "finished_at": time.time()}
        self.writer.append([row])
        self.rows.append(row)


def final_front(prep: Prepared, method: str, screened: list[dict], trainable, *, slots: int,
                log: Callable) -> list[dict]:
    """As `evo search` does: the cfg.final_top most accurate policies of the screened Pareto front,
    fine-tuned final_steps, evaluated once on the test split; rows also go to pareto.parquet."""
    from evo.selection import pareto_front

    evaluated = [(tuple(r["genome"]), r["accuracy"], r["cost"], r["violation"]) for r in screened
                 if r["status"] == "ok"]
    front = sorted(pareto_front(evaluated), key=lambda e: -e[1])[:prep.cfg.final_top]
    if not front:
        log(f"{method}: no feasible policy was screened; nothing to fine-tune on the test split")
        return []
    log(f"final: fine-tuning {len(front)} policies for {prep.cfg.final_steps} steps, then one test-split "
        "evaluation each")
    rows = run_policy_grid(prep, trainable, [("pareto", e[0]) for e in front], phase="final", slots=slots,
                           history=[], method=method)
    rows.sort(key=lambda r: -(r.get("test_accuracy") or 0.0))
    PartWriter(prep.run_dir / "pareto.parquet", TRIAL_SCHEMA).append(rows)
    return rows
