"""The trial contract, one function per concept: what a trial is asked (``trial_config``), how its
result is read (``outcome``: ok, or failed with an error), and the row it becomes in trials.parquet
(``trial_row``). The searcher, the policy grid, every baseline and ADMM go through these, so a result
means the same everywhere. Plain dicts only: configs cross process boundaries, rows go to Parquet.

Phases (the ``phase`` column): ``search`` (a screened trial of any method), ``uniform`` (evo's
in-run screening of a uniform policy it had not evaluated, for the final table), ``final`` (a
longer fine-tune, then the one test-split evaluation), ``epoch`` (one ADMM epoch's record).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

from evo.core.genome import genome_from_key, genome_key
from hardware.checks import is_finite_number

PHASES = ("search", "uniform", "final", "epoch")
WORKER_FAILURE = "trial errored (worker or node failure); see error.txt in its Tune trial folder"


def trial_config(genome: Sequence[int] | None, policy: Mapping, *, phase: str, label: str | None = None,
                 generation: int | None = None, repeat: int | None = None, rung: int | None = None,
                 steps: int | None = None) -> dict:
    """What ``trainables.policy_trial`` reads: the policy to apply and the phase (``final`` also
    evaluates the test split); genome, label, generation, repeat and rung come back in the row.
    ``repeat`` k > 0 fine-tunes the same policy again with the run's seed + k (a final policy's
    seed spread); repeat 0 is the run's own seed. ``steps`` (a search trial at a successive-halving
    rung, ``evo.core.rungs``) replaces the run's ``fine_tune_steps``."""
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r}; valid choices: {list(PHASES)}")
    config = {"phase": phase, "policy": dict(policy)}
    if genome is not None:
        config["genome"] = genome_key(genome)
    if label is not None:
        config["label"] = label
    if generation is not None:
        config["generation"] = generation
    if repeat is not None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
            raise ValueError(f"repeat={repeat!r} must be an integer >= 0")
        config["repeat"] = repeat
    for name, value, low in (("rung", rung, 0), ("steps", steps, 1)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
            config[name] = value
    return config


class Outcome(NamedTuple):
    failed: bool
    error: str  # "" when ok
    accuracy: float  # NaN when failed


def outcome(result: Mapping | None, errored: bool) -> Outcome:
    """Read a finished trial: an error raised by the trial or its worker, a ``failed`` report or a
    non-finite accuracy all make it failed (infeasible for the search)."""
    if errored or result is None:
        return Outcome(True, WORKER_FAILURE, math.nan)
    if result.get("failed"):
        return Outcome(True, str(result.get("error") or "trial reported failure"), math.nan)
    accuracy = result.get("accuracy")
    if not is_finite_number(accuracy):
        return Outcome(True, f"non-finite accuracy {accuracy!r}", math.nan)
    return Outcome(False, "", float(accuracy))


@dataclass(frozen=True)
class RunContext:
    """The columns every row of one run shares."""

    method: str
    seed: int
    target: str
    budget: str


def trial_row(context: RunContext, config: Mapping, result: Mapping | None, result_outcome: Outcome, *,
              trial_id: str | None = None, **columns) -> dict:
    """One trials.parquet row: the reported metrics, then the config's genome/policy/phase/label/
    generation, the outcome and the run's columns; ``columns`` (e.g. budget and seed of an ADMM
    trial) override those last."""
    metrics = {k: v for k, v in (result or {}).items() if k not in ("config", "failed")}
    key = config.get("genome")
    row = {**metrics, "method": context.method, "phase": config["phase"], "label": config.get("label"),
           "trial_id": trial_id or metrics.get("trial_id"),
           "genome": list(genome_from_key(key)) if key is not None else None, "genome_key": key,
           "policy": json.dumps(config["policy"]) if "policy" in config else metrics.get("policy"),
           "status": "failed" if result_outcome.failed else "ok", "error": result_outcome.error or None,
           "generation": config.get("generation"), "repeat": config.get("repeat"), "rung": config.get("rung"),
           "seed": context.seed,
           "target": context.target,
           "budget": context.budget, "finished_at": time.time()}
    row.update(columns)
    return row
