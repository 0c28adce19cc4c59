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
import math
from typing import Callable, Protocol

from ray.tune.search import Searcher

from evo.genome import genome_key
from evo.population import FINISHED as POPULATION_FINISHED
from evo.population import Population


class Listener(Protocol):
    def on_evaluated(self, trial_id: str, candidate, result: dict | None, failed: bool, error: str) -> None: ...

    def on_generation(self, stats: dict) -> None: ...


class EvoSearcher(Searcher):
    def __init__(
        self,
        population: Population,
        *,
        decode: Callable,
        cost_fn: Callable,
        listener: Listener | None = None,
        metric: str = "accuracy",
    ):
        super().__init__(metric=metric, mode="max")
        self.population = population
        self._decode = decode
        self._cost_fn = cost_fn
        self._listener = listener
        self._live: dict[str, object] = {}  # trial id -> Candidate

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
        return {
            "phase": "search",
            "generation": item.generation,
            "genome": genome_key(item.genome),
            "policy": self._decode(item.genome).to_dict(),
        }

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        candidate = self._live.pop(trial_id, None)
        if candidate is None:  # not ours (e.g. a trial from before a restore)
            return
        failed, message, accuracy = classify(result, error)
        cost = float(self._cost_fn(candidate.genome))
        generations_before = len(self.population.generation_stats)
        self.population.tell(candidate.ask_id, accuracy, cost, failed=failed)
        if self._listener is not None:
            self._listener.on_evaluated(trial_id, candidate, result, failed, message)
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


def classify(result: dict | None, error: bool) -> tuple[bool, str, float]:
    """(failed, error message, accuracy) for a finished trial."""
    if error or result is None:
        return True, "trial errored (worker or node failure); see error.txt in its Tune trial folder", float("nan")
    accuracy = result.get("accuracy")
    if result.get("failed"):
        return True, str(result.get("error") or "trial reported failure"), float("nan")
    if accuracy is None or not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy):
        return True, f"non-finite accuracy {accuracy!r}", float("nan")
    return False, "", float(accuracy)
