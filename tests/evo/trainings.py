"""Count the trainings a run really did, where they happen: every report a trial wrote into its
Tune trial folder (``result.json``, one JSON line per ``tune.report``), across every experiment of
the run (a resumed run adds ``tune-resume-N``). Rows of trials.parquet are no evidence: the
recorder deduplicates them, so a resume that retrained everything would leave them unchanged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def reports(run_dir: Path) -> list[dict]:
    out = []
    for path in sorted(Path(run_dir).glob("*/*/result.json")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def trainings(run_dir: Path) -> Counter:
    """(phase, genome key) of every finished policy-trial training; (phase, budget, seed) of every
    finished ADMM trial (its per-epoch reports are not counted)."""
    counted = Counter()
    for report in reports(run_dir):
        config = report.get("config", {})
        item = config.get("item", config)
        if "run" in config:  # an ADMM trial: one final report per budget x seed
            if report.get("phase") == "final":
                counted[("final", config["run"]["budget"], config["run"]["seed"])] += 1
        elif "phase" in item:
            counted[(item["phase"], item.get("genome"))] += 1
    return counted
