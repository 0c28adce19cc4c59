"""What ``evo search --resume`` continues from: the saved state and the results logged after it
(see evo.runs.recorder for how they are written).
"""

from __future__ import annotations

import json
from pathlib import Path

from evo.runs.recorder import LOG_FILE, STATE_FILE


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
