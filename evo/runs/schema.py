"""The Parquet schemas of a run folder's tables, and ``conform`` (a row to a schema's columns).

"""

from __future__ import annotations

import json
import math
from typing import Mapping

import pyarrow as pa

# Metrics a policy trial reports; every one gets its own column (null when absent).
FLOAT_METRICS = (
    "accuracy", "loss", "test_accuracy", "test_loss", "train_loss",
    "bops", "bops_dense", "bops_vs_fp32", "bops_vs_int8", "size_bits", "size_bits_honest",
    "size_vs_fp32", "energy_pj", "latency_s", "cost", "limit", "violation",
    "wall_seconds", "compute_seconds",
)
INT_METRICS = ("steps", "nnz", "params", "macs", "seed", "generation", "epoch", "repeat", "rung", "val_examples")

TRIAL_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("phase", pa.string()),  # evo.core.trial.PHASES
        ("trial_id", pa.string()),
        ("genome", pa.list_(pa.int32())),
        ("genome_key", pa.string()),
        ("policy", pa.string()),  # hardware.policy.Policy as JSON
        ("status", pa.string()),  # "ok" | "failed"
        ("error", pa.string()),
        ("node_id", pa.string()),
        ("target", pa.string()),
        ("budget", pa.string()),
        ("label", pa.string()),  # e.g. "pareto", "uniform W4A4 s0.9", budget name for baselines
        ("extra", pa.string()),  # JSON of anything else the trial reported
    ]
    + [(name, pa.float64()) for name in FLOAT_METRICS]
    + [(name, pa.int64()) for name in INT_METRICS]
    + [("finished_at", pa.float64())]
)

GENERATION_SCHEMA = pa.schema(
    [
        ("generation", pa.int64()),
        ("hypervolume", pa.float64()),
        ("best_feasible_accuracy", pa.float64()),
        ("feasible_fraction", pa.float64()),
        ("front_size", pa.int64()),
        ("trials", pa.int64()),  # trainings of the generation, every rung
        ("top_rung_trials", pa.int64()),  # those at the top rung (all of them without rungs)
        ("failed", pa.int64()),
        ("cached", pa.int64()),
        ("seconds", pa.float64()),
        ("trials_total", pa.int64()),
        ("compute_seconds_total", pa.float64()),
        ("elapsed", pa.float64()),
    ]
)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def conform(row: Mapping, schema: pa.Schema) -> dict:
    """Keep the schema's columns (missing -> null); the rest of a trial row goes to ``extra``."""
    out = {name: _clean(row.get(name)) for name in schema.names}
    if "extra" in schema.names:
        rest = {k: v for k, v in row.items() if k not in schema.names and _jsonable(v)}
        out["extra"] = json.dumps(rest, sort_keys=True, default=str) if rest else row.get("extra")
    return out


def _jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, dict)) or value is None


