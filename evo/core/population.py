"""Generational NSGA-II bookkeeping behind an ask/tell interface (pure: no torch, no Ray).

The Ray Tune Searcher adapter calls ``ask()`` for a genome to evaluate and ``tell()`` with
its result; this module decides what to evaluate next. A generation's offspring are bred
once, when the previous generation closes, so ``ask()`` only pops a queue.

* Generation 0 (``evo.core.initial.initial_genomes``): the least-pruned uniform genomes that fit
  the budget (one per bit-width combination; 20 % of ``screen_size`` of them when there are
  more: the first of ``uniforms`` as given, else spread along the cost axis), the first
  sensitivity-guided genomes given as ``guided`` (up to 60 % of it), then random genomes
  repaired to budget fractions spread over 0.1-1.0, up to ``screen_size`` (``population_size``
  without successive halving).
* Later generations: binary tournament -> layer-wise crossover -> mutation -> budget repair.
  A child that cannot be repaired, or that repeats a genome already evaluated or already in
  this generation, is dropped and another is bred (at most ``DRAWS_PER_SLOT`` draws per
  slot). Slots still empty after that (the search has converged) are filled with earlier
  results, recorded with ``from_cache=True`` and never handed out by ``ask()`` again.
  With ``surrogate`` (a ``Sensitivity``), ``prescreen.OVERSAMPLE`` times more children are bred
  and ``evo.core.prescreen`` keeps the generation's share of them by the sensitivity's predicted
  distortion, refitted on the run's results; its fit is added to the closing generation's stats.
* Successive halving (``rungs`` > 1, ``evo.core.rungs``): a generation's ``screen_size``
  offspring are asked at rung 0 (a short fine-tune); when all are told, the best 1/``rung_factor``
  by constrained NSGA-II rank are asked again at rung 1, and so on. Only top-rung results
  enter survival, the archive front and the statistics; lower-rung results stay in the history
  (their genomes are not bred again).
* A generation closes when its top rung is told; NSGA-II survival then keeps
  ``population_size`` of parents + top-rung offspring, and a ``generation_stats`` row is appended.

``state()`` is plain JSON data (non-finite floats as strings) and ``from_state`` resumes
exactly: the genomes that were asked but not told are handed out again, with the same ask
ids, and everything told stays told.

(Longer than the ~250-line guide: one class whose ask/tell, generation close, breeding and
state round trip share one set of invariants over its private queues; split across modules,
each half would reach into the other's private state.)
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

from evo.core.variation import crossover, mutate
from evo.core.repair import check_reachable, repair
from evo.core.initial import initial_genomes
from evo.core.prescreen import OVERSAMPLE, choose as prescreen_choose, fit as prescreen_fit
from evo.core.indicators import hypervolume
from evo.core.rungs import check_rungs, promoted_count, screen_size
from evo.core.selection import pareto_front, survive, tournament
from evo.core.sensitivity import Sensitivity
from evo.core.space import SearchSpace
from hardware.budget import violation
from hardware.checks import check_int, check_positive, check_probability

FINISHED = "FINISHED"  # same value as ray.tune.search.Searcher.FINISHED; compare with ``is``
DRAWS_PER_SLOT = 10
STATE_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    genome: tuple[int, ...]
    generation: int
    repaired: bool
    ask_id: int
    rung: int = 0  # the fidelity it is asked at (evo.core.rungs); 0 when the search has one rung


class Evaluation(NamedTuple):
    """One evaluated genome; the first four fields are what ``evo.core.selection`` ranks."""

    genome: tuple[int, ...]
    accuracy: float
    cost: float
    violation: float
    generation: int
    failed: bool = False
    from_cache: bool = False
    rung: int = 0


def planned_trials(population_size: int, generations: int) -> int:
    """How many trials a search trains when no slot is answered from the cache: ``population_size``
    in generation 0 (``initial_genomes``; the uniform genomes it leaves out are screened for the
    best-uniform reference, not as search trials) and in each later generation. Baselines get the
    same number, so trial budgets match."""
    check_int("generations", generations, minimum=1)
    return population_size * generations


def _surrogate(saved: dict | None) -> Sensitivity | None:
    """A ``Population.state()``'s surrogate tables back as a Sensitivity (JSON made them lists)."""
    return None if saved is None else Sensitivity.from_lists(saved["weight"], saved["activation"])


def _json_float(value: float):
    return value if math.isfinite(value) else str(value)  # "nan" / "inf": strict JSON has neither



class Population:
    """Generational NSGA-II as an ask/tell object, pure (no Ray, no torch): ``ask`` hands out the
    next genome (None: wait for results; FINISHED: done), ``tell`` takes its validation accuracy and
    cost; a generation closes when all its genomes are told (survival, tournament, crossover,
    mutation, budget repair of the offspring). A genome evaluated before is answered from the
    history instead of being trained again.

    Args:
        space: the search space (evo.core.space.SearchSpace).
        cost_fn: genome -> budgeted cost (evo.core.cost_table.make_cost_fn).
        limit: the budget in cost_fn's units.
        population_size: survivors per generation and offspring bred per generation.
        generations: generations after generation 0.
        seed: seeds the population's own random.Random (checkpointed in ``state``).
        crossover_prob: probability that two parents are crossed (DEAP cxUniform).
        mutation_indpb: per-gene mutation probability (default 1 / free genes).
        guided: sensitivity-guided genomes for generation 0 (``evo.core.sensitivity``), within
            ``limit``; see ``evo.core.initial.initial_genomes`` for the whole mix.
        rungs, rung_factor: successive halving inside each generation (``evo.core.rungs``);
            ``rungs=1`` (the default) asks every genome once.
        surrogate: the per-layer sensitivity that pre-screens bred children (``evo.core.prescreen``);
            None breeds exactly the children a generation trains.
        uniforms: generation 0's uniform genomes (``evo.core.initial.uniform_picks``: the search
            passes those of least predicted distortion), within ``limit``; only the first
            ``uniform_slots(screen_size)`` are taken. None: the least-pruned ones spread along the
            cost axis.

    ``Population.from_state(state, cost_fn=...)`` rebuilds one from ``state()`` for --resume.
    """

    def __init__(self, *, space: SearchSpace, cost_fn: Callable[[tuple[int, ...]], float], limit: float,
                 population_size: int, generations: int, seed: int, crossover_prob: float = 0.9,
                 mutation_indpb: float | None = None, guided: Sequence[tuple[int, ...]] = (), rungs: int = 1,
                 rung_factor: int = 3, surrogate: Sensitivity | None = None,
                 uniforms: Sequence[tuple[int, ...]] | None = None):
        self._setup(space=space, cost_fn=cost_fn, limit=limit, population_size=population_size,
                    generations=generations, seed=seed, crossover_prob=crossover_prob, mutation_indpb=mutation_indpb,
                    rungs=rungs, rung_factor=rung_factor, surrogate=surrogate)
        check_reachable(space, cost_fn, self.limit)
        start = initial_genomes(space, cost_fn, self.limit, self.screen_size, self.rng, DRAWS_PER_SLOT, guided,
                                uniforms)
        self._queue.extend((genome, repaired, None) for genome, repaired in start)
        self._close_while_empty()

    def _setup(self, *, space, cost_fn, limit, population_size, generations, seed, crossover_prob,
               mutation_indpb, rungs=1, rung_factor=3, surrogate=None) -> None:
        """Validated settings and empty bookkeeping (shared by __init__ and from_state)."""
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space={space!r} must be an evo.core.space.SearchSpace")
        mutation_indpb = 1.0 / max(1, len(space.free_genes())) if mutation_indpb is None else mutation_indpb
        check_int("population_size", population_size, minimum=4)
        check_int("generations", generations, minimum=1)
        check_int("seed", seed)
        check_positive("limit", limit)
        check_probability("crossover_prob", crossover_prob)
        check_probability("mutation_indpb", mutation_indpb)
        check_rungs(rungs, rung_factor)
        if surrogate is not None:
            if not isinstance(surrogate, Sensitivity):
                raise ValueError(f"surrogate={surrogate!r} must be an evo.core.sensitivity.Sensitivity or None")
            surrogate.check(space)
        self.surrogate = surrogate
        self.rungs, self.rung_factor = rungs, rung_factor
        self.screen_size = screen_size(population_size, rungs, rung_factor)
        self.rung = 0  # the rung the queue and the pending genomes are at
        self._rung_results: list[tuple[Evaluation, bool]] = []  # this rung's results (below the top), repaired
        self.space, self.cost_fn, self.seed, self.limit = space, cost_fn, seed, float(limit)
        self.population_size, self.generations = population_size, generations
        self.crossover_prob, self.mutation_indpb = float(crossover_prob), float(mutation_indpb)
        self.rng = random.Random(seed)
        self._history: list[Evaluation] = []
        self.generation_stats: list[dict] = []
        self.generation = 0
        self._parents: list[Evaluation] = []
        self._archive_front: list[Evaluation] = []
        self._evaluated: set[tuple[int, ...]] = set()
        self._queue: deque[tuple[tuple[int, ...], bool, int | None]] = deque()  # genome, repaired, ask id
        self._pending: dict[int, Candidate] = {}
        self._offspring: list[Evaluation] = []  # this generation's results so far
        self._next_ask_id = 0
        self._finished = False

    # -- the ask/tell interface ---------------------------------------------------------
    def ask(self) -> Candidate | None | str:
        """The next genome to evaluate, ``None`` to wait for pending results, or ``FINISHED``."""
        if self._finished:
            return FINISHED
        if not self._queue:
            return None
        genome, repaired, ask_id = self._queue.popleft()
        if ask_id is None:
            ask_id, self._next_ask_id = self._next_ask_id, self._next_ask_id + 1
        candidate = Candidate(genome, self.generation, repaired, ask_id, self.rung)
        self._pending[ask_id] = candidate
        return candidate

    def tell(self, ask_id: int, accuracy: float, cost: float, *, failed: bool = False) -> None:
        candidate = self._pending.pop(ask_id, None)
        if candidate is None:
            reissued = [entry for entry in self._queue if entry[2] == ask_id]
            if not reissued:  # a result from before a restore may arrive before its re-issue
                raise ValueError(f"ask_id={ask_id!r} is not pending (never asked, or already told); "
                                 f"pending ask ids: {sorted(self._pending)}")
            self._queue.remove(reissued[0])
            candidate = Candidate(reissued[0][0], self.generation, reissued[0][1], ask_id, self.rung)
        accuracy, cost = float(accuracy), float(cost)
        failed = bool(failed) or math.isnan(accuracy) or math.isnan(cost)
        self._record(Evaluation(candidate.genome, accuracy, cost, self._violation(cost, failed),
                                self.generation, failed, rung=candidate.rung), candidate.repaired)
        self._close_while_empty()

    def replay(self, results: Sequence[tuple[Sequence[int], float, float, bool]]) -> None:
        """Tell results logged after this state was saved, in the order they were first told:
        ``(genome, accuracy, cost, failed)``, each genome waiting in the queue of the generation
        it belongs to. The generations they close are bred exactly as they were the first time.

        A generation's results are taken from the queue in one pass (O(n) per generation).
        """
        done = 0
        while done < len(results):
            if self._finished or not self._queue or self._pending:
                raise ValueError(f"{len(results) - done} logged results left but generation {self.generation} "
                                 "has none waiting: the log does not belong to this state")
            batch = [(tuple(genome), accuracy, cost, failed)
                     for genome, accuracy, cost, failed in results[done:done + len(self._queue)]]
            wanted = {item[0] for item in batch}
            if len(wanted) != len(batch):
                raise ValueError(f"the log repeats a genome of generation {self.generation}")
            taken, rest = {}, deque()
            for entry in self._queue:
                if entry[0] in wanted and entry[0] not in taken:
                    taken[entry[0]] = entry
                else:
                    rest.append(entry)
            missing = [list(genome) for genome in wanted if genome not in taken]
            if missing:
                raise ValueError(f"logged genome {missing[0]} is not waiting in generation {self.generation}: "
                                 "the log does not belong to this state")
            self._queue = rest
            ask_ids = {}
            for genome, _, _, _ in batch:
                _, repaired, ask_id = taken[genome]
                if ask_id is None:
                    ask_id, self._next_ask_id = self._next_ask_id, self._next_ask_id + 1
                ask_ids[genome] = ask_id
                self._pending[ask_id] = Candidate(genome, self.generation, repaired, ask_id, self.rung)
            for genome, accuracy, cost, failed in batch:
                self.tell(ask_ids[genome], accuracy, cost, failed=failed)
            done += len(batch)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def is_finished(self) -> bool:
        return self._finished

    # -- results as plain dicts (genome, accuracy, cost, violation, generation, failed, from_cache)
    @property
    def history(self) -> list[dict]:
        """Every result in the order told, cache answers included."""
        return [e._asdict() for e in self._history]

    @property
    def parents(self) -> list[dict]:
        return [e._asdict() for e in self._parents]

    def front(self) -> list[dict]:
        """Feasible non-dominated results over everything evaluated so far, cheapest first."""
        return [e._asdict() for e in sorted(self._archive_front, key=lambda e: (e.cost, -e.accuracy))]

    # -- results and generations ----------------------------------------------------------
    def _violation(self, cost: float, failed: bool) -> float:
        return math.inf if failed else violation(cost, self.limit)

    @property
    def top_rung(self) -> int:
        return self.rungs - 1

    def _record(self, evaluation: Evaluation, repaired: bool = False) -> None:
        self._history.append(evaluation)
        if evaluation.rung == self.top_rung:
            self._offspring.append(evaluation)
        else:
            self._rung_results.append((evaluation, repaired))
        self._evaluated.add(evaluation.genome)

    def _promote(self) -> bool:
        """Queue the best of this rung's results at the next rung; False when none can go on."""
        trained = [(e, repaired) for e, repaired in self._rung_results if not e.failed]
        self._rung_results = []
        count = min(len(trained), promoted_count(len(trained), self.rung_factor))
        self.rung += 1
        if not count:
            return False
        trained.sort(key=lambda item: item[0].genome)  # the next rung does not depend on the order results came in
        best = {e.genome for e in survive([e for e, _ in trained], count)}
        self._queue.extend((e.genome, repaired, None) for e, repaired in trained if e.genome in best)
        return True

    def _close_while_empty(self) -> None:
        # a rung all told promotes its best to the next; a generation answered wholly from the
        # cache (or left empty) closes at once
        while not self._finished and not self._queue and not self._pending:
            while self.rung < self.top_rung:
                if self._promote():
                    return
            self._close_generation()
            if self.generation + 1 >= self.generations:
                self._finished = True
            else:
                self.generation += 1
                self._offspring = []
                self.rung = 0
                self._breed()

    def _close_generation(self) -> None:
        # in genome order, not the order results arrived in (trials finish in any order on a
        # cluster): survival's tie-breaks, and so the next generations, do not depend on timing,
        # and a resumed run breeds what an uninterrupted one would
        offspring = sorted(self._offspring, key=lambda e: e.genome)
        pool: dict[tuple[int, ...], Evaluation] = {}
        for evaluation in self._parents + offspring:  # one entry per genome, parents' first
            pool.setdefault(evaluation.genome, evaluation)
        self._parents = survive(list(pool.values()), self.population_size)
        real = [e for e in offspring if not e.from_cache]  # the top rung's
        trained = [e for e in self._history if e.generation == self.generation and not e.from_cache]  # every rung
        self._archive_front = pareto_front(self._archive_front + [e for e in real if e.violation == 0.0])
        best = max((e.accuracy for e in self._archive_front), default=None)
        self.generation_stats.append({
            "generation": self.generation,
            "hypervolume": hypervolume([(e.accuracy, e.cost) for e in self._archive_front], self.limit),
            "best_feasible_accuracy": best,
            "feasible_fraction": sum(e.violation == 0.0 for e in real) / len(real) if real else 0.0,
            "trials": len(trained),
            "top_rung_trials": len(real),
            "failed": sum(e.failed for e in trained),
            "cached": len(offspring) - len(real),
            "front_size": len(self._archive_front),
        })

    # -- breeding -----------------------------------------------------------------------
    def _breed(self) -> None:
        chosen: dict[tuple[int, ...], bool] = {}
        seen_before: list[tuple[int, ...]] = []  # evaluated genomes bred again: the cache fallback
        size = self.screen_size
        wanted = size * (OVERSAMPLE if self.surrogate is not None else 1)
        draws = DRAWS_PER_SLOT * wanted
        mates = iter(tournament(self._parents, draws + 2, self.rng))  # two children per pair of mates
        while len(chosen) < wanted and draws > 0:
            parent1, parent2 = next(mates).genome, next(mates).genome
            if self.rng.random() < self.crossover_prob:
                parent1, parent2 = crossover(parent1, parent2, self.rng)
            for child in (parent1, parent2):
                draws -= 1
                mutant = mutate(child, self.space, self.rng, self.mutation_indpb)
                fixed = repair(mutant, self.space, self.cost_fn, self.limit)
                if fixed is None or fixed in chosen:
                    continue
                if fixed in self._evaluated:
                    seen_before.append(fixed)
                elif len(chosen) < wanted:
                    chosen[fixed] = fixed != mutant
        if self.surrogate is not None:
            chosen = self._prescreen(chosen, size)
        self._queue.extend((genome, repaired, None) for genome, repaired in chosen.items())
        self._fill_from_cache(seen_before, self.population_size - len(chosen))

    def _prescreen(self, chosen: dict[tuple[int, ...], bool], size: int) -> dict[tuple[int, ...], bool]:
        """``size`` of the bred children by the surrogate fitted on the top rung's results so far;
        the fit goes into the stats of the generation that just closed."""
        results = [(e.genome, e.accuracy) for e in self._history
                   if e.rung == self.top_rung and not e.failed and not e.from_cache]
        fitted = prescreen_fit(self.surrogate, results)
        if self.generation_stats:
            self.generation_stats[-1].update(
                surrogate_alpha=None if fitted is None else fitted.alpha,
                surrogate_spearman=None if fitted is None else fitted.spearman,
                surrogate_used=fitted is not None and fitted.trusted and len(chosen) > size)
        kept = prescreen_choose(list(chosen), size, self.surrogate, fitted, self.cost_fn)
        return {genome: chosen[genome] for genome in kept}

    def _fill_from_cache(self, genomes: list[tuple[int, ...]], slots: int) -> None:
        # a top-rung result only: it joins this generation's top rung as it is
        latest = {e.genome: e for e in self._history if not e.from_cache and e.rung == self.top_rung}
        for genome in dict.fromkeys(genomes):
            if slots <= 0:
                return
            if genome not in latest:
                continue
            self._record(latest[genome]._replace(generation=self.generation, from_cache=True))
            slots -= 1

    # -- persistence ----------------------------------------------------------------------
    def state(self) -> dict:
        history_index = {id(e): i for i, e in enumerate(self._history)}
        version, internal, gauss = self.rng.getstate()
        return {
            "version": STATE_VERSION,
            "space": self.space.to_dict(),
            "limit": self.limit, "population_size": self.population_size, "generations": self.generations,
            "seed": self.seed, "crossover_prob": self.crossover_prob, "mutation_indpb": self.mutation_indpb,
            "rng": [version, list(internal), gauss],
            "rungs": self.rungs, "rung_factor": self.rung_factor, "rung": self.rung,
            "surrogate": None if self.surrogate is None else {"weight": self.surrogate.weight,
                                                              "activation": self.surrogate.activation},
            "rung_results": [[history_index[id(e)], repaired] for e, repaired in self._rung_results],
            "generation": self.generation, "next_ask_id": self._next_ask_id, "finished": self._finished,
            "history": [[list(e.genome), _json_float(e.accuracy), _json_float(e.cost), _json_float(e.violation),
                         e.generation, e.failed, e.from_cache, e.rung] for e in self._history],
            "parents": [history_index[id(e)] for e in self._parents],
            "archive_front": [history_index[id(e)] for e in self._archive_front],
            "offspring": [history_index[id(e)] for e in self._offspring],
            # pending first: handed out again, in ask order, before the rest of the queue
            "queue": [[list(c.genome), c.repaired, c.ask_id] for c in sorted(self._pending.values(),
                                                                            key=lambda c: c.ask_id)]
                     + [[list(g), r, a] for g, r, a in self._queue],
            "generation_stats": [dict(row) for row in self.generation_stats],
        }

    @classmethod
    def from_state(cls, state: dict, *, cost_fn: Callable[[tuple[int, ...]], float]) -> "Population":
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a Population state of version {STATE_VERSION}: "
                             f"version={state.get('version') if isinstance(state, dict) else state!r}")
        population = cls.__new__(cls)  # no generation 0: the saved state replaces it
        population._setup(space=SearchSpace.from_dict(state["space"]), cost_fn=cost_fn, limit=state["limit"],
                          population_size=state["population_size"], generations=state["generations"],
                          seed=state["seed"], crossover_prob=state["crossover_prob"],
                          mutation_indpb=state["mutation_indpb"], rungs=state.get("rungs", 1),
                          rung_factor=state.get("rung_factor", 3), surrogate=_surrogate(state.get("surrogate")))
        version, internal, gauss = state["rng"]
        population.rng.setstate((version, tuple(internal), gauss))
        population.generation, population._next_ask_id = state["generation"], state["next_ask_id"]
        population._finished = state["finished"]
        population._history = [Evaluation(tuple(g), float(a), float(c), float(v), gen, failed, cached, *rung)
                               for g, a, c, v, gen, failed, cached, *rung in state["history"]]
        population.rung = state.get("rung", 0)
        population._rung_results = [(population._history[i], repaired) for i, repaired in state.get("rung_results", [])]
        for name in ("parents", "archive_front", "offspring"):
            setattr(population, f"_{name}", [population._history[i] for i in state[name]])
        population._evaluated = {e.genome for e in population._history}
        population._queue = deque((tuple(g), r, a) for g, r, a in state["queue"])
        population.generation_stats = [dict(row) for row in state["generation_stats"]]
        return population
