"""Successive halving inside a generation (pure: no torch, no Ray).

With ``rungs`` R > 1 and ``factor`` eta, a generation's offspring are first fine-tuned briefly
(rung 0); the best 1/eta by constrained NSGA-II rank are fine-tuned again, eta times longer
(rung 1), and so on up to rung R - 1, which gets the run's ``fine_tune_steps``. Only the top
rung's results enter survival, the front and the hypervolume: a policy is never ranked against
one fine-tuned for a different number of steps.

Sizes keep the compute of a generation what it is without rungs (``population_size`` trials of
``fine_tune_steps``): every rung costs about the same (eta times fewer trials, eta times longer
each), so rung 0 holds ``population_size * eta^(R-1) / R`` offspring. With R = 3 and eta = 3
that is 3 x the policies of a search without rungs at the same fine-tune samples.
"""

from __future__ import annotations

import math

from hardware.checks import check_int

MAX_RUNGS = 4
FACTOR_RANGE = (2, 10)


def check_rungs(rungs: int, factor: int, fine_tune_steps: int | None = None) -> None:
    """A clear error for a rung setting that is out of range or (given ``fine_tune_steps``)
    leaves rung 0 without a step."""
    check_int("rungs", rungs, minimum=1, maximum=MAX_RUNGS)  # 1: no successive halving
    check_int("rung_factor", factor, minimum=FACTOR_RANGE[0], maximum=FACTOR_RANGE[1])
    if fine_tune_steps is None:
        return
    check_int("fine_tune_steps", fine_tune_steps, minimum=1)
    if fine_tune_steps < factor ** (rungs - 1):
        raise ValueError(f"rungs={rungs} with rung_factor={factor} fine-tunes rung 0 for fine_tune_steps / "
                         f"{factor ** (rungs - 1)} steps, under one step at fine_tune_steps={fine_tune_steps}; "
                         f"use fewer rungs, a smaller rung_factor or fine_tune_steps >= {factor ** (rungs - 1)}")


def rung_steps(fine_tune_steps: int, rungs: int, factor: int) -> tuple[int, ...]:
    """Fine-tune steps of each rung, lowest first; the top rung gets ``fine_tune_steps``."""
    check_rungs(rungs, factor, fine_tune_steps)
    return tuple(max(1, round(fine_tune_steps / factor ** (rungs - 1 - r))) for r in range(rungs))


def screen_size(population_size: int, rungs: int, factor: int) -> int:
    """Offspring screened at rung 0 per generation: ``population_size`` without rungs, else as
    many as keep the generation's fine-tune samples equal to that (never fewer)."""
    check_int("population_size", population_size, minimum=1)
    if rungs == 1:
        return population_size
    return max(population_size, round(population_size * factor ** (rungs - 1) / rungs))


def promoted_count(trained: int, factor: int) -> int:
    """How many of a rung's ``trained`` policies go on to the next rung: the top 1/factor, at least one."""
    return max(1, math.ceil(trained / factor)) if trained else 0
