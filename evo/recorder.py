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

from evo.genome import genome_key
from evo.results import GENERATION_SCHEMA, TRIAL_SCHEMA, PartWriter, write_json_atomic

STATE_FILE = "search_state.json"
LOG_FILE = "search_log.jsonl"


class SearchRecorder:
    def __init__(self, run_dir: Path, *, method: str, seed: int, target: str, budget: str,
                 decode: Callable, state_fn: Callable[[], dict] | None = None, log: Callable = print,
                 elapsed_offset: float = 0.0):
        self.run_dir = Path(run_dir)
        self.trials = PartWriter(self.run_dir / "trials.parquet", TRIAL_SCHEMA)
        self.generations = PartWriter(self.run_dir / "generations.parquet", GENERATION_SCHEMA)
        self.method, self.seed, self.target, self.budget = method, seed, target, budget
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

    def on_evaluated(self, trial_id: str, candidate, result: dict | None, failed: bool, error: str) -> None:
        key = genome_key(candidate.genome)
        if key in self._written:
            # A driver killed between writing this row and logging the result re-runs the trial
            # on --resume; the row written the first time stands.
            self._log_result(candidate, result, failed)
            return
        row = dict(result or {})
        row.update(
            method=self.method, phase="search", trial_id=trial_id, genome=list(candidate.genome),
            genome_key=key, policy=json.dumps(self._decode(candidate.genome).to_dict()),
            status="failed" if failed else "ok", error=error or None, generation=candidate.generation,
            seed=self.seed, target=self.target, budget=self.budget, finished_at=time.time(),
        )
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
        line = {"genome": list(candidate.genome), "generation": candidate.generation, "failed": bool(failed),
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
        from evo.results import read_table

        table = read_table(self.run_dir / "trials.parquet", TRIAL_SCHEMA)
        phases, keys = table.column("phase").to_pylist(), table.column("genome_key").to_pylist()
        self._written = {k for p, k in zip(phases, keys) if p == "search"}
        self.trials_total = saved.get("trials_total", 0)
        self.failed_total = saved.get("failed_total", 0)
        self.compute_seconds = saved.get("compute_seconds", 0.0)

    def catch_up(self, generation_stats: list[dict]) -> None:
        """Write the rows of generations closed but not written before a restart (a generation
        closed by the log's replay, or a kill between closing one and writing its row)."""
        from evo.results import read_table

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


def load_saved(run_dir: Path) -> tuple[dict, list[dict]] | None:
    """The saved state and the logged results that came after it, or None if there is no state.

    A log line from an earlier generation than the state's (a kill between writing the state and
    emptying the log) is already in the state; a torn last line (a kill mid-write) is dropped.
    """
    run_dir = Path(run_dir)
    if not (run_dir / STATE_FILE).exists():
        return None
    state = json.loads((run_dir / STATE_FILE).read_text())
    if state["population"].get("finished"):
        return state, []
    generation = state["population"]["generation"]
    lines = (run_dir / LOG_FILE).read_text().splitlines() if (run_dir / LOG_FILE).exists() else []
    entries = []
    for number, text in enumerate(lines, start=1):
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{run_dir / LOG_FILE}: line {number} is not JSON; the run cannot be resumed "
                             "from it") from None
        if entry["generation"] >= generation:
            entries.append(entry)
    if entries:
        state["recorder"] = entries[-1]["recorder"]
    return state, entries


def format_generation(row: dict) -> str:
    best = row.get("best_feasible_accuracy")
    best_text = f"{best:.4f}" if isinstance(best, (int, float)) and math.isfinite(best) else "  none"
    return (
        f"gen {row['generation']:>3} | best acc in budget {best_text} | front {row.get('front_size', 0):>3} | "
        f"hypervolume {row.get('hypervolume', 0.0):.4f} | feasible {row.get('feasible_fraction', 0.0):.0%} | "
        f"trials {row.get('trials_total', 0)} done, {row.get('failed', 0)} failed this gen | "
        f"elapsed {row.get('elapsed', 0.0):.0f}s"
    )


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
