"""What ``evo search --resume`` continues from: the saved state and the results logged after it
(see evo.runs.recorder for how they are written).
"""

from __future__ import annotations

import json
from pathlib import Path

from evo.core.genome import genome_from_key
from evo.runs.recorder import LOG_FILE, STATE_FILE

TRAININGS_LOG = "trainings.jsonl"  # written by the trials (trainables.worker.log_training)


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
    entries = [entry for entry in read_json_lines(run_dir / LOG_FILE) if entry["generation"] >= generation]
    if entries:
        state["recorder"] = entries[-1]["recorder"]
    return state, entries


def unlogged_trainings(run_dir: Path, told: set[tuple[tuple[int, ...], int]], phase: str = "search") -> list[dict]:
    """Trainings of ``phase`` that finished (the trials' own ``trainings.jsonl``) but whose result
    never reached the driver's record: a driver killed between a trial's end and Tune delivering
    its result. ``told``: the (genome, rung) pairs the driver has (rung 0 without successive
    halving). In the order they finished, one per genome and rung; a torn last line (a kill
    mid-write) is dropped. ``--resume`` uses them instead of training them again."""
    found: dict[tuple[tuple[int, ...], int], dict] = {}
    for record in read_json_lines(Path(run_dir) / TRAININGS_LOG):
        if record.get("phase") != phase or not record.get("genome") or "result" not in record:
            continue
        key = (genome_from_key(record["genome"]), record.get("rung") or 0)
        if key not in told and key not in found:
            found[key] = record
    return list(found.values())


def read_json_lines(path: Path) -> list[dict]:
    """The records of an append-only JSON-lines log ([] if there is none); a torn last line (a
    kill mid-write) is dropped, any other bad line is an error."""
    lines = path.read_text().splitlines() if path.exists() else []
    records = []
    for number, text in enumerate(lines, start=1):
        try:
            records.append(json.loads(text))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not JSON; the run cannot be resumed from it") from None
    return records
