"""`evo search`'s screening: the NSGA-II population (evo.core.population) asked and told through
the Ray Tune searcher (evo.tune.searcher), every result recorded as it finishes
(evo.runs.recorder) and resumable (evo.runs.resume); then the best uniform policy within the
budget, which the final table compares the evolved policies with."""

from __future__ import annotations

import functools
import math

from evo.core.genome import genome_from_key, genome_key
from evo.core.trial import outcome, trial_config, trial_row
from evo.core.initial import least_pruned_uniforms
from evo.core.rungs import rung_steps
from evo.methods.screening import PolicyMethod
from evo.runs.pipeline import Screened, Session, run_policy_grid


class Evolve(PolicyMethod):
    name = "evo"

    def screen(self, session: Session) -> Screened:
        prep = session.prep
        sensitivity = functools.cache(lambda: run_sensitivity(prep, session.log))  # measured once, when needed
        population = self._search(session, sensitivity)
        evaluated = [(tuple(r["genome"]), r["accuracy"], r["cost"], r["violation"], r["generation"])
                     for r in top_rung(population) if not r["failed"]]
        uniforms = best_uniforms(session, population, prep.cfg.final_uniform)
        refine = None
        if prep.cfg.final_fill and sensitivity() is not None:
            from evo.core.sensitivity import filled_genome

            def refine(genome: tuple) -> tuple:
                return filled_genome(genome, prep.space, prep.cost_fn, prep.limit, sensitivity())
        return Screened(evaluated=evaluated, extra_finals=[("uniform reference", g) for g in uniforms],
                        generations=list(population.generation_stats), refine=refine)

    def table(self, session: Session, finals: list[dict]) -> str:
        from evo.runs.summary import format_final_table

        return format_final_table(finals, session.prep, versus_uniform=True)

    def _search(self, session: Session, sensitivity):
        from evo.core.population import Candidate, Population
        from evo.runs.recorder import FanOut, SearchRecorder
        from evo.runs.resume import load_saved, unlogged_trainings
        from evo.tune.cluster import describe_slots
        from evo.tune.metrics import MetricsListener
        from evo.tune.searcher import EvoSearcher
        from evo.tune.tuner import build_tuner

        prep, cfg, run_dir, log = session.prep, session.prep.cfg, session.run_dir, session.log
        loaded = load_saved(run_dir) if session.resume else None
        saved, lost = None, []
        if loaded is None:
            population = Population(space=prep.space, cost_fn=prep.cost_fn, limit=prep.limit,
                                    population_size=cfg.population, generations=cfg.generations, seed=cfg.seed,
                                    crossover_prob=cfg.crossover_prob,
                                    guided=guided_policies(prep, sensitivity(), log),
                                    rungs=cfg.rungs, rung_factor=cfg.rung_factor,
                                    surrogate=surrogate(cfg, sensitivity(), log),
                                    uniforms=uniform_policies(prep, sensitivity(), log))
        else:  # generation 0 is not bred again just to be replaced by the saved state
            saved, logged = loaded
            population = Population.from_state(saved["population"], cost_fn=prep.cost_fn)
            told = {(tuple(r["genome"]), r["rung"]) for r in population.history} \
                | {(tuple(e["genome"]), e.get("rung") or 0) for e in logged}
            lost = unlogged_trainings(run_dir, told)  # finished, but the killed driver never heard
            results = [(entry["genome"], entry["accuracy"], entry["failed"]) for entry in logged]
            results += [(genome_from_key(r["genome"]), *_accuracy_and_failed(r["result"])) for r in lost]
            population.replay([(genome, math.nan if accuracy is None else accuracy, prep.cost_fn(tuple(genome)),
                                failed) for genome, accuracy, failed in results])
        recorder = SearchRecorder(run_dir, context=session.context, decode=prep.space.decode, log=log)
        metrics = MetricsListener.start(cfg.name)  # the Ray dashboard's view of the search
        steps = rung_steps(cfg.fine_tune_steps, cfg.rungs, cfg.rung_factor) if cfg.rungs > 1 else None
        searcher = EvoSearcher(population, decode=prep.space.decode, cost_fn=prep.cost_fn,
                               listener=FanOut(recorder, metrics), rung_steps=steps)
        recorder.state_fn = searcher.get_state
        experiment = "tune"
        if saved is not None:
            recorder.restore_counts(saved.get("recorder", {}))
            for record in lost:  # their rows, as the live driver would have written them
                candidate = Candidate(genome_from_key(record["genome"]), record.get("generation") or 0, False, -1,
                                      record.get("rung") or 0)
                recorder.on_evaluated(record["result"].get("trial_id", ""), candidate, record["result"],
                                      outcome(record["result"], False))
            recorder.catch_up(searcher.population.generation_stats)
            metrics.restore(trials_finished=recorder.trials_total, trials_failed=recorder.failed_total,
                            generation_stats=searcher.population.generation_stats)
            experiment = f"tune-resume-{len(list(run_dir.glob('tune-resume-*'))) + 1}"
            log(f"resuming: {recorder.trials_total} trials already evaluated ({len(lost)} of them taken from the "
                f"trials' own log), {len(searcher.population.generation_stats)} generations closed")
        recorder.save_state()  # the state --resume starts from (after a resume: with the log folded in)
        log(f"search: population {cfg.population}, {cfg.generations} generations, "
            f"{describe_slots(session.slots, session.resources, cfg.cpus_per_trial, cfg.gpus_per_trial)}, "
            f"{cfg.fine_tune_steps} fine-tune steps per trial")
        if steps is not None:
            log(f"successive halving: {population.screen_size} policies per generation fine-tuned "
                f"{steps[0]} steps, the best 1/{cfg.rung_factor} by constrained rank promoted at each rung "
                f"({' -> '.join(map(str, steps))} steps); only the top rung's results are ranked in the search")
        if not searcher.population.is_finished:
            build_tuner(session.trainable, run_dir=run_dir, experiment=experiment, search_alg=searcher,
                        max_concurrent=session.slots, max_failures=cfg.max_failures, verbose=cfg.verbose).fit()
        if not searcher.population.is_finished:
            raise RuntimeError(f"the search stopped before its last generation; continue it with --resume "
                               f"(run folder {run_dir})")
        recorder.save_state()
        return searcher.population


def _screened_uniforms(session: Session) -> dict[tuple, float]:
    """Genome -> validation accuracy of the uniform screens of an earlier driver of this run:
    its trials.parquet rows, and the trainings its trials logged that never reached a row
    (written now, as the driver would have)."""
    from evo.runs.parquet import PartWriter, read_table
    from evo.runs.resume import unlogged_trainings
    from evo.runs.schema import TRIAL_SCHEMA

    path = session.run_dir / "trials.parquet"
    rows = read_table(path, TRIAL_SCHEMA).to_pandas()
    rows = rows[rows.phase == "uniform"]
    known = {tuple(int(g) for g in r.genome): float(r.accuracy) for r in rows.itertuples() if r.status == "ok"}
    lost = unlogged_trainings(session.run_dir, {(tuple(int(g) for g in genome), 0) for genome in rows.genome},
                              "uniform")
    found = []
    for record in lost:
        genome = genome_from_key(record["genome"])
        config = trial_config(genome, session.prep.space.decode(genome).to_dict(), phase="uniform",
                              label=record.get("label"))
        found.append(trial_row(session.context, config, record["result"], outcome(record["result"], False)))
        if found[-1]["status"] == "ok":
            known[genome] = found[-1]["accuracy"]
    if found:
        PartWriter(path, TRIAL_SCHEMA).append(found)
    return known


def top_rung(population) -> list[dict]:
    """The history's results at the population's top rung (all of them without successive
    halving): the only ones fine-tuned for ``fine_tune_steps``, so the only ones the final phase
    and the best-uniform line compare."""
    return [r for r in population.history if r["rung"] == population.top_rung]


def run_sensitivity(prep, log):
    """The float base model's per-layer Fisher sensitivity on the first ``sensitivity_samples``
    training images (trainables.sensitivity), as ``evo.core.sensitivity.Sensitivity``; None when
    it is turned off (0 samples) or the measurement fails (a model it cannot handle; logged)."""
    cfg = prep.cfg
    if cfg.sensitivity_samples == 0:
        return None
    import torch

    from evo.core.sensitivity import Sensitivity
    from trainables.sensitivity import measure_sensitivity
    from trainables.user_model import build_from_reference

    model = build_from_reference(prep.model_ref)
    model.load_state_dict(prep.base_state)
    count = min(cfg.sensitivity_samples, len(prep.splits.train_y))
    x = torch.as_tensor(prep.splits.train_x[:count].copy())
    y = torch.as_tensor(prep.splits.train_y[:count].copy()).long()
    try:
        tables = measure_sensitivity(model, prep.specs, prep.space, x, y, log=log)
    except Exception as err:  # a model the measurement cannot handle: the search goes on without it
        log(f"sensitivity: could not be measured ({type(err).__name__}: {err}); generation 0 takes no "
            "sensitivity-guided policies (uniform and repaired random ones instead)"
            f"{' and the final policies are not filled' if cfg.final_fill else ''}")
        return None
    return Sensitivity.from_lists(tables["weight"], tables["activation"])


def guided_policies(prep, sensitivity, log) -> list[tuple[int, ...]]:
    """Generation 0's sensitivity-guided genomes: ``sensitivity`` (``run_sensitivity``) walked down
    to several fractions of the budget (evo.core.sensitivity); none without it."""
    if sensitivity is None:
        return []
    from evo.core.initial import guided_slots
    from evo.core.rungs import screen_size
    from evo.core.sensitivity import GUIDED_FRACTIONS, guided_genomes

    cfg = prep.cfg
    genomes = guided_genomes(prep.space, prep.cost_fn, prep.limit, sensitivity)
    taken = genomes[:guided_slots(screen_size(cfg.population, cfg.rungs, cfg.rung_factor))]
    log(f"sensitivity-guided policies for generation 0: {len(taken)} of the {len(genomes)} walked to budget "
        f"fractions {', '.join(f'{f:g}' for f in GUIDED_FRACTIONS)}, at "
        f"{', '.join(f'{prep.cost_fn(g) / prep.limit:.2f}' for g in taken) or 'none'} of the budget")
    return taken


def uniform_policies(prep, sensitivity, log) -> list[tuple[int, ...]]:
    """Generation 0's share of the least-pruned uniform policies (``uniform_slots``), logged when
    they outnumber it: those of least predicted distortion by ``sensitivity`` (it orders LeNet-5's
    uniform policies by their screened accuracy with Spearman 0.95-0.97), or, without one, spread
    along the cost axis."""
    from evo.core.initial import least_pruned_uniforms, uniform_picks, uniform_slots
    from evo.core.rungs import screen_size

    cfg = prep.cfg
    uniforms = least_pruned_uniforms(prep.space, prep.cost_fn, prep.limit)
    keep = uniform_slots(screen_size(cfg.population, cfg.rungs, cfg.rung_factor))
    rank = None if sensitivity is None else sensitivity.distortion
    picks = uniform_picks(uniforms, prep.cost_fn, keep, rank)
    if len(uniforms) > keep:
        how = "the least predicted distortion" if rank else "spread along the cost axis (no sensitivity)"
        log(f"uniform policies for generation 0: {len(picks)} of the {len(uniforms)} least-pruned within the budget, "
            f"by {how}: {', '.join(uniform_name(prep.space, g) for g in picks)}")
    return picks


def uniform_name(space, genome) -> str:
    """A uniform policy in short, e.g. 's0.8 w3a3': its layers' most common setting (a pinned 8-bit
    first or last layer differs from the rest)."""
    import json

    from evo.runs.summary import describe_policy

    settings = [part.split(" ", 1)[1] for part in describe_policy(json.dumps(space.decode(genome).to_dict())).split(" | ")]
    return max(settings, key=settings.count)


def surrogate(cfg, sensitivity, log):
    """The sensitivity that pre-screens bred children (``cfg.surrogate``), or None."""
    if not cfg.surrogate:
        return None
    if sensitivity is None:
        log("surrogate pre-screen: off, the per-layer sensitivity is not measured (sensitivity_samples 0, "
            "or the measurement failed); every bred child is trained")
        return None
    from evo.core.prescreen import OVERSAMPLE

    log(f"surrogate pre-screen: each later generation breeds {OVERSAMPLE}x the children it trains and keeps "
        "those the sensitivity's predicted distortion (its activation weight refitted on this run's results) "
        "ranks best at their cost")
    return sensitivity


def _accuracy_and_failed(result: dict) -> tuple[float | None, bool]:
    read = outcome(result, False)
    return (None if read.failed else read.accuracy), read.failed


def best_uniforms(session: Session, population, count: int) -> list[tuple]:
    """The ``count`` best uniform policies within budget by screened validation accuracy, best
    first, each fine-tuned as one search trial (the final phase trains them all and the final table
    takes the best by its own validation accuracy). Generation 0 evaluates its share of them
    (``uniform_policies``); the rest, and any a resumed run's search did not evaluate, are screened
    here."""
    prep, log = session.prep, session.log
    candidates = least_pruned_uniforms(prep.space, prep.cost_fn, prep.limit)
    if not candidates:
        return []
    known = {tuple(r["genome"]): r["accuracy"] for r in top_rung(population) if not r["failed"]}
    if session.resume:  # uniform screens a killed driver finished are not trained again
        known.update(_screened_uniforms(session))
    todo = [g for g in candidates if g not in known]
    if todo:
        log(f"uniform baseline: screening {len(todo)} more uniform policies within budget "
            f"({len(candidates) - len(todo)} were evaluated by the search)")
        rows = run_policy_grid(session, [("uniform screen", g) for g in todo], phase="uniform")
        known.update({tuple(r["genome"]): r["accuracy"] for r in rows if r["status"] == "ok"})
    scored = sorted(((known[g], g) for g in candidates if g in known), reverse=True)[:count]
    if scored:
        log(f"the {len(scored)} best screened uniform policies within budget, fine-tuned in the final phase as "
            f"the uniform reference: " + ", ".join(f"{genome_key(g)} (validation accuracy {a:.4f})" for a, g in scored))
    return [genome for _, genome in scored]
