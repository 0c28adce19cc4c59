"""The Ray Tune Searcher adapter over the pure ask/tell Population.

Thin by design: ``suggest`` asks the population for the next genome (``None`` = wait for
the generation to close, ``FINISHED`` = done) and maps the Tune trial id to it;
``on_trial_complete`` tells the result back. A trial that errors, reports NaN or reports
``failed`` counts as infeasible. Everything else (Parquet rows, progress lines, the state
file for ``--resume``) is the ``listener``'s business.

Ray 2.60 keeps only ONE pending trial for a custom searcher unless it is wrapped in a
ConcurrencyLimiter; ``TuneConfig(max_concurrent_trials=N)`` does that wrapping, and the
tuner builder always sets it.
"""

from __future__ import annotations

import json
from typing import Callable, Protocol

from ray.tune.search import Searcher

from evo.core.trial import Outcome, outcome, trial_config
from evo.core.population import FINISHED as POPULATION_FINISHED
from evo.core.population import Population


class Listener(Protocol):
    def on_evaluated(self, trial_id: str, candidate, result: dict | None, result_outcome: Outcome) -> None: ...

    def on_generation(self, stats: dict) -> None: ...


class EvoSearcher(Searcher):
    """Ray Tune's view of an evo.core.population.Population.

    Args:
        population: the ask/tell NSGA-II population (pure; owns generations and survival).
        decode: genome -> hardware.policy.Policy, for the trial config.
        cost_fn: genome -> the budgeted cost: the one source of a result's cost (exact, computed
            on the driver from the layer specs; the trial's own pricing only fills the row).
        listener: told every result and every closed generation (the recorder, the metrics).
        metric: the result key Tune reads (validation accuracy).
        rung_steps: fine-tune steps of each successive-halving rung (``evo.core.rungs.rung_steps``),
            put in the trial config; None leaves the trainable's own ``fine_tune_steps`` (one rung).
    """

    def __init__(
        self,
        population: Population,
        *,
        decode: Callable,
        cost_fn: Callable,
        listener: Listener | None = None,
        metric: str = "accuracy",
        rung_steps: tuple[int, ...] | None = None,
    ):
        super().__init__(metric=metric, mode="max")
        self.population = population
        self._decode = decode
        self._cost_fn = cost_fn
        self._listener = listener
        self._live: dict[str, object] = {}  # trial id -> Candidate
        if rung_steps is not None and len(rung_steps) != population.rungs:
            raise ValueError(f"rung_steps={rung_steps!r}: one per rung of the population ({population.rungs})")
        self._rung_steps = tuple(rung_steps) if rung_steps is not None else None

    def __getstate__(self) -> dict:
        # Tune pickles the searcher with the experiment; the listener (files, the metrics actor,
        # the driver's log function) belongs to this driver process and is not carried along.
        state = self.__dict__.copy()
        state["_listener"] = None
        return state

    # -- Tune calls these ----------------------------------------------------------------
    def suggest(self, trial_id: str):
        item = self.population.ask()
        if item is POPULATION_FINISHED:
            return Searcher.FINISHED
        if item is None:
            return None
        self._live[trial_id] = item
        return search_config(item, self._decode, self._rung_steps)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        candidate = self._live.pop(trial_id, None)
        if candidate is None:  # not ours (e.g. a trial from before a restore)
            return
        result_outcome = outcome(result, error)
        cost = float(self._cost_fn(candidate.genome))
        generations_before = len(self.population.generation_stats)
        self.population.tell(candidate.ask_id, result_outcome.accuracy, cost, failed=result_outcome.failed)
        if self._listener is not None:
            self._listener.on_evaluated(trial_id, candidate, result, result_outcome)
            for stats in self.population.generation_stats[generations_before:]:
                self._listener.on_generation(stats)

    # -- persistence (Tune calls save/restore; evo's --resume uses get_state/set_state) -----
    def get_state(self) -> dict:
        return {"population": self.population.state()}

    def set_state(self, state: dict) -> None:
        self.population = Population.from_state(state["population"], cost_fn=self._cost_fn)
        self._live = {}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as fh:
            json.dump(self.get_state(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as fh:
            self.set_state(json.load(fh))



def search_config(candidate, decode: Callable, rung_steps: tuple[int, ...] | None) -> dict:
    """The trial config of one asked candidate: its policy, generation and (with rungs) its rung
    and that rung's fine-tune steps."""
    rungs = {} if rung_steps is None else {"rung": candidate.rung, "steps": rung_steps[candidate.rung]}
    return trial_config(candidate.genome, decode(candidate.genome).to_dict(), phase="search",
                        generation=candidate.generation, **rungs)
