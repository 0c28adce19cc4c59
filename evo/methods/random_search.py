"""`evo baseline random`: Tune's built-in ``BasicVariantGenerator`` over as many samples as evo
search trains; each sample is a seeded random genome passed through ``evo.core.repair.repair``
(the repair evo applies to its offspring), drawn again when it repeats an earlier sample."""

from __future__ import annotations

import random
from typing import Callable

from evo.core.repair import repair
from evo.core.trial import trial_config
from evo.methods.screening import PolicyMethod, evaluated_rows, search_trials, tune_screen
from evo.runs.pipeline import Screened, Session

REDRAWS = 100  # draws per sample before a repeated genome is accepted


def repaired_random_sampler(space, cost_fn: Callable, limit: float, rng: random.Random) -> Callable:
    """A ``tune.sample_from`` function: a random genome, repaired into the budget, new if possible.
    A closure rather than an object: Tune deep-copies the spec per sample, which copies objects
    (and their RNG state) but shares functions, so every sample advances the one ``rng``."""
    seen: set[tuple[int, ...]] = set()

    def draw(spec=None) -> dict:
        for _ in range(REDRAWS):
            genome = repair(space.random_genome(rng), space, cost_fn, limit)
            if genome is not None and genome not in seen:
                break
        seen.add(genome)
        return trial_config(genome, space.decode(genome).to_dict(), phase="search")

    return draw


class RandomSearch(PolicyMethod):
    name = "random"

    def screen(self, session: Session) -> Screened:
        from ray import tune

        prep = session.prep
        sampler = repaired_random_sampler(prep.space, prep.cost_fn, prep.limit, random.Random(prep.cfg.seed))
        trials = search_trials(prep)
        session.log(f"random: {trials} repaired random policies (as many as evo search trains), "
                    f"{session.slots} at once")
        rows = tune_screen(session, trials, search_alg=None, param_space={"item": tune.sample_from(sampler)})
        return Screened(evaluated=evaluated_rows(rows), stats={"trials": len(rows)})
