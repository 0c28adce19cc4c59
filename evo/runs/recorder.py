"""What the driver writes while a search runs: one Parquet part per finished trial, one
``generations.parquet`` row and one progress line per generation, and what ``evo search
--resume`` continues from:

* ``search_state.json``: the whole search state, written atomically when the search starts
  and at every generation close (O(evaluated genomes), so not per result);
* ``search_log.jsonl``: one line per result told since then (O(1) per result), emptied after
  each state write. ``--resume`` loads the state and replays the log
  (``Population.replay``), so a killed driver loses no finished trial.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

from evo.core.genome import genome_key
from evo.core.trial import Outcome, RunContext, trial_config, trial_row
from evo.runs.parquet import PartWriter, read_table, write_json_atomic
from evo.runs.schema import GENERATION_SCHEMA, TRIAL_SCHEMA

STATE_FILE = "search_state.json"
LOG_FILE = "search_log.jsonl"


class SearchRecorder:
    """Writes a search's run folder as results arrive (a listener of evo.tune.searcher.EvoSearcher).

    Args:
        run_dir: the run folder.
        context: the run's columns of every row (method, seed, target, budget).
        decode: genome -> hardware.policy.Policy (the search space's decoder).
        state_fn: returns the searcher's whole state, saved at each generation close.
        log: where the per-generation progress line goes.
        elapsed_offset: seconds already spent before a resume.
    """

    def __init__(self, run_dir: Path, *, context: RunContext, decode: Callable,
                 state_fn: Callable[[], dict] | None = None, log: Callable = print, elapsed_offset: float = 0.0):
        self.run_dir = Path(run_dir)
        self.trials = PartWriter(self.run_dir / "trials.parquet", TRIAL_SCHEMA)
        self.generations = PartWriter(self.run_dir / "generations.parquet", GENERATION_SCHEMA)
        self.context = context
        self._decode = decode
        self.state_fn = state_fn
        self._log = log
        self._started = time.time() - elapsed_offset
        self._generation_started = time.time()
        self.trials_total = 0
        self.failed_total = 0
        self.compute_seconds = 0.0
        self._written: set[str] = set()  # genome keys already in trials.parquet (search phase)

    def elapsed(self) -> float:
        return time.time() - self._started

    def on_evaluated(self, trial_id: str, candidate, result: dict | None, result_outcome: Outcome) -> None:
        key = _written_key(genome_key(candidate.genome), candidate.rung)
        failed = result_outcome.failed
        if key in self._written:
            # A driver killed between writing this row and logging the result re-runs the trial
            # on --resume; the row written the first time stands.
            self._log_result(candidate, result, failed)
            return
        config = trial_config(candidate.genome, self._decode(candidate.genome).to_dict(), phase="search",
                              generation=candidate.generation, rung=candidate.rung)
        row = trial_row(self.context, config, result, result_outcome, trial_id=trial_id)
        self.trials.append([row])
        self._written.add(key)
        self.trials_total += 1
        self.failed_total += int(failed)
        seconds = row.get("compute_seconds")
        if isinstance(seconds, (int, float)) and math.isfinite(seconds):
            self.compute_seconds += seconds
        self._log_result(candidate, result, failed)

    def _counts(self) -> dict:
        return {"elapsed": self.elapsed(), "trials_total": self.trials_total,
                "failed_total": self.failed_total, "compute_seconds": self.compute_seconds}

    def _log_result(self, candidate, result: dict | None, failed: bool) -> None:
        accuracy = None if failed or result is None else result.get("accuracy")
        line = {"genome": list(candidate.genome), "generation": candidate.generation, "rung": candidate.rung,
                "failed": bool(failed),
                "accuracy": accuracy if isinstance(accuracy, (int, float)) and math.isfinite(accuracy) else None,
                "recorder": self._counts()}
        with open(self.run_dir / LOG_FILE, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def save_state(self) -> None:
        """The whole state, then an empty log (a state newer than the log's lines is detected
        on load by their generation, so a kill between the two steps is harmless)."""
        if self.state_fn is not None:
            state = self.state_fn()
            state["recorder"] = self._counts()
            write_json_atomic(self.run_dir / STATE_FILE, state)
            with open(self.run_dir / LOG_FILE, "w"):
                pass

    def restore_counts(self, saved: dict) -> None:
        table = read_table(self.run_dir / "trials.parquet", TRIAL_SCHEMA)
        phases, keys = table.column("phase").to_pylist(), table.column("genome_key").to_pylist()
        # a run folder from before successive halving has no rung column: every row is rung 0
        rungs = table.column("rung").to_pylist() if "rung" in table.column_names else [0] * table.num_rows
        self._written = {_written_key(k, r or 0) for p, k, r in zip(phases, keys, rungs) if p == "search"}
        self.trials_total = saved.get("trials_total", 0)
        self.failed_total = saved.get("failed_total", 0)
        self.compute_seconds = saved.get("compute_seconds", 0.0)

    def catch_up(self, generation_stats: list[dict]) -> None:
        """Write the rows of generations closed but not written before a restart (a generation
        closed by the log's replay, or a kill between closing one and writing its row)."""
        table = read_table(self.run_dir / "generations.parquet", GENERATION_SCHEMA)
        written = set(table.column("generation").to_pylist())
        for stats in generation_stats:
            if stats["generation"] not in written:
                self.on_generation(stats)

    def on_generation(self, stats: dict) -> None:
        now = time.time()
        row = dict(stats)
        row.update(seconds=now - self._generation_started, trials_total=self.trials_total,
                   compute_seconds_total=self.compute_seconds, elapsed=self.elapsed())
        self._generation_started = now
        self.generations.append([row])
        self.save_state()
        self._log(format_generation(row))


def _written_key(key: str, rung: int) -> str:
    return f"{key}@{rung}"  # one row per genome and rung


def format_generation(row: dict) -> str:
    best = row.get("best_feasible_accuracy")
    best_text = f"{best:.4f}" if isinstance(best, (int, float)) and math.isfinite(best) else "  none"
    return (
        f"gen {row['generation']:>3} | best acc in budget {best_text} | front {row.get('front_size', 0):>3} | "
        f"hypervolume {row.get('hypervolume', 0.0):.4f} | feasible {row.get('feasible_fraction', 0.0):.0%} | "
        f"trials {row.get('trials_total', 0)} done, {row.get('failed', 0)} failed this gen | "
        f"elapsed {row.get('elapsed', 0.0):.0f}s"
        + _surrogate_text(row)
    )


def _surrogate_text(row: dict) -> str:
    """The pre-screen's fit for the next generation (evo.core.prescreen), when the search has one."""
    if "surrogate_used" not in row:
        return ""
    rho, alpha = row.get("surrogate_spearman"), row.get("surrogate_alpha")
    if rho is None:
        return " | surrogate: too few results to fit"
    from evo.core.prescreen import MIN_SPEARMAN

    use = ("pre-screens the next generation" if row["surrogate_used"] else
           f"below {MIN_SPEARMAN}, children as bred" if rho < MIN_SPEARMAN else "too few children to choose from")
    return f" | surrogate Spearman {rho:.2f} (activation weight {alpha:g}): {use}"


class FanOut:
    """Several listeners behind one (the recorder, the dashboard metrics)."""

    def __init__(self, *listeners):
        self.listeners = [x for x in listeners if x is not None]

    def on_evaluated(self, *args, **kwargs) -> None:
        for listener in self.listeners:
            listener.on_evaluated(*args, **kwargs)

    def on_generation(self, stats: dict) -> None:
        for listener in self.listeners:
            listener.on_generation(stats)
