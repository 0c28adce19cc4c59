"""Count the trainings a run really did, where they happen: the trials' own log
(``trainings.jsonl``, one line appended and fsynced by the worker as each training ends, so a
driver killed without warning loses none). Rows of trials.parquet are no evidence: the recorder
deduplicates them, so a resume that retrained everything would leave them unchanged. Tune's
``result.json`` files are no evidence for a killed driver either: the driver writes them
buffered, and a SIGKILL drops what was not flushed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def reports(run_dir: Path) -> list[dict]:
    """Every result Tune wrote into the run's trial folders (complete for a driver that exited)."""
    out = []
    for path in sorted(Path(run_dir).glob("*/*/result.json")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def trainings(run_dir: Path, by_rung: bool = False) -> Counter:
    """(phase, genome key) of every finished policy training (``by_rung``: (phase, genome key,
    rung), a successive-halving search training a genome once per rung); (phase, budget, seed)
    of every finished ADMM trial."""
    log = Path(run_dir) / "trainings.jsonl"
    counted = Counter()
    for line in (log.read_text().splitlines() if log.exists() else []):
        record = json.loads(line)
        key = (record["phase"], record["genome"]) if record.get("genome") else \
            (record["phase"], record["budget"], record["seed"])
        if by_rung and record.get("genome"):
            key += (record.get("rung") or 0,)
        counted[key] += 1
    return counted
