"""`evo baseline optuna`'s searcher: Tune's ``OptunaSearch`` (Optuna's constrained NSGA-II
sampler, one categorical index per gene) behind a filter that trains only new policies within
the budget. Optuna must be told every point it asked, so an over-budget suggestion (or a repeat
of a finished genome) is told back at once, before any trial starts: accuracy 0 at its cost with
constraint cost/limit - 1 > 0 (a repeat: its earlier result). As many trials as evo search trains
are trained; run.yaml counts the rest."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Callable

from ray.tune.search import Searcher

from evo.core.trial import outcome, trial_config
from evo.methods.screening import PolicyMethod, evaluated_rows, search_trials, tune_screen
from evo.runs.pipeline import Screened, Session

OPTUNA_MISSING = "optuna is not installed; `evo baseline optuna` needs it: pip install 'evo[optuna]'"
MAX_ASKS_PER_TRIAL = 10_000  # over-budget or repeated suggestions told back before one trial runs


class AffordableOptuna(Searcher):
    """Tune's OptunaSearch (constrained NSGA-II, one categorical index per gene) behind a filter:
    a suggestion over the budget, or a repeat of a genome already trained or in training, is
    told back at once and the next one asked, so every trial Tune starts
    trains a new policy within the budget."""

    def __init__(self, space, cost_fn: Callable, limit: float, *, population: int, seed: int):
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(metric="accuracy", mode="max")
        self._space, self._cost_fn, self._limit = space, cost_fn, limit
        self._names = [":".join(space.gene_name(i)) for i in range(space.n_genes)]
        distributions = {name: optuna.distributions.CategoricalDistribution(list(range(len(table))))
                         for name, table in zip(self._names, space.gene_tables)}
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per told suggestion
        with warnings.catch_warnings():
            # Optuna 5 deprecates constraints_func (removed in 7) for Trial.set_constraint, which
            # OptunaSearch gives no access to; constraints_func works from Optuna 3.5 on.
            warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
            sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed,
                                                    constraints_func=self._constraints)
        self._inner = OptunaSearch(space=distributions, metric=["accuracy", "cost"], mode=["max", "min"],
                                   sampler=sampler)
        self._live: dict[str, tuple[str, tuple]] = {}  # Tune trial id -> (Optuna key, genome)
        self._told: dict[tuple, dict | None] = {}  # genome -> what its trial told Optuna (None: failed)
        self._waiting: dict[tuple, list[str]] = {}  # genome in training -> Optuna keys of its repeats
        self.over_budget = self.repeats = 0

    def _genome(self, params: dict) -> tuple[int, ...]:
        return tuple(int(params[name]) for name in self._names)

    def _constraints(self, frozen_trial) -> list[float]:
        return [self._cost_fn(self._genome(frozen_trial.params)) / self._limit - 1.0]

    def suggest(self, trial_id: str):
        for attempt in range(MAX_ASKS_PER_TRIAL):
            key = f"{trial_id}-{attempt}"
            genome = self._genome(self._inner.suggest(key))
            cost = self._cost_fn(genome)
            if cost > self._limit:
                self.over_budget += 1
                self._inner.on_trial_complete(key, {"accuracy": 0.0, "cost": cost})
            elif genome in self._told:
                self.repeats += 1
                self._inner.on_trial_complete(key, self._told[genome], error=self._told[genome] is None)
            elif genome in self._waiting:
                self.repeats += 1
                self._waiting[genome].append(key)
            else:
                self._waiting[genome] = []
                self._live[trial_id] = (key, genome)
                return {"item": trial_config(genome, self._space.decode(genome).to_dict(), phase="search")}
        raise RuntimeError(f"Optuna made {MAX_ASKS_PER_TRIAL} suggestions in a row that were over the budget or "
                           "repeats; loosen the budget or use `evo search`, which repairs offspring")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key, genome = self._live.pop(trial_id)
        failed, _, accuracy = outcome(result, error)
        told = None if failed else {"accuracy": accuracy, "cost": self._cost_fn(genome)}
        self._told[genome] = told
        for waiting_key in [key] + self._waiting.pop(genome):
            self._inner.on_trial_complete(waiting_key, told, error=failed)

    def __getstate__(self) -> dict:
        """Tune pickles its search algorithm into the experiment's tuner.pkl, for Tuner.restore,
        which this baseline refuses (see restore). Optuna 5.1's samplers hold a thread lock and
        cannot be pickled, so the pickle leaves the Optuna searcher out."""
        return {**self.__dict__, "_inner": None}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: baselines do not resume (a new run starts from scratch)."""

    def restore(self, checkpoint_path: str) -> None:
        raise ValueError("evo baseline optuna does not resume; start a new run with --name")


class OptunaNSGA2(PolicyMethod):
    name = "optuna"

    def __init__(self) -> None:
        if importlib.util.find_spec("optuna") is None:  # a clear message before anything runs
            raise ValueError(OPTUNA_MISSING)

    def screen(self, session: Session) -> Screened:
        prep, cfg = session.prep, session.prep.cfg
        searcher = AffordableOptuna(prep.space, prep.cost_fn, prep.limit, population=cfg.population, seed=cfg.seed)
        trials = search_trials(prep)
        session.log(f"optuna: NSGA-II (population {cfg.population}, seed {cfg.seed}), {trials} trials, "
                    f"{session.slots} at once")
        rows = tune_screen(session, trials, search_alg=searcher)
        session.log(f"optuna: {searcher.over_budget} over-budget and {searcher.repeats} repeated suggestions told "
                    "back without training")
        return Screened(evaluated=evaluated_rows(rows),
                        stats={"trials": len(rows), "over_budget_suggestions": searcher.over_budget,
                               "repeated_suggestions": searcher.repeats})
