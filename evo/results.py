"""Run-folder results: Parquet datasets streamed one part file per row batch, and run.yaml.

A Parquet file cannot be appended in place, so every table is a *folder*
(``trials.parquet/part-00042.parquet``); each part is written to a temporary name and
renamed, so a killed driver never leaves a half-written part. ``compact`` folds the parts
into one at the end. pandas, pyarrow and DuckDB read the folder as one table::

    pd.read_parquet("runs/default/trials.parquet")
    duckdb.sql("select * from 'runs/default/trials.parquet/*.parquet'")
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

# Metrics a policy trial reports; every one gets its own column (null when absent).
FLOAT_METRICS = (
    "accuracy", "loss", "test_accuracy", "test_loss", "train_loss",
    "bops", "bops_dense", "bops_vs_fp32", "bops_vs_int8", "size_bits", "size_bits_honest",
    "size_vs_fp32", "energy_pj", "latency_s", "cost", "limit", "violation",
    "wall_seconds", "compute_seconds",
)
INT_METRICS = ("steps", "nnz", "params", "macs", "seed", "generation", "epoch")

TRIAL_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("phase", pa.string()),  # "search" | "final"
        ("trial_id", pa.string()),
        ("genome", pa.list_(pa.int32())),
        ("genome_key", pa.string()),
        ("policy", pa.string()),  # hardware.policy.Policy as JSON
        ("status", pa.string()),  # "ok" | "failed" | "cached"
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
        ("trials", pa.int64()),
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


class PartWriter:
    """Append rows to a Parquet dataset folder, one atomically written part file per call."""

    def __init__(self, folder: str | Path, schema: pa.Schema):
        self.folder = Path(folder)
        self.schema = schema
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.folder.glob("part-*.parquet") if (m := re.match(r"part-(\d+)", p.name))]
        self._next = max(numbers, default=-1) + 1

    def append(self, rows: Iterable[Mapping]) -> Path | None:
        rows = [conform(r, self.schema) for r in rows]
        if not rows:
            return None
        table = pa.Table.from_pylist(rows, schema=self.schema)
        path = self.folder / f"part-{self._next:05d}.parquet"
        tmp = self.folder / f".tmp-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self._next += 1
        return path


def read_table(folder: str | Path, schema: pa.Schema | None = None) -> pa.Table:
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return (schema or TRIAL_SCHEMA).empty_table()
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")


def compact(folder: str | Path, schema: pa.Schema) -> None:
    """Fold every part into one (written first, then the old parts removed)."""
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    if len(parts) <= 1:
        return
    table = read_table(folder, schema)
    number = int(re.match(r"part-(\d+)", parts[-1].name).group(1)) + 1
    tmp = folder / f".tmp-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / f"part-{number:05d}.parquet")
    for p in parts:
        p.unlink()


def write_yaml_atomic(path: str | Path, data) -> None:
    import yaml

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def versions() -> dict:
    """Versions of the packages that decide a result, and the git revision when known."""
    from importlib import metadata
    import subprocess

    out = {}
    for pkg in ("evo", "ray", "torch", "deap", "numpy", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        out["git_revision"] = rev.stdout.strip() or None
        out["git_dirty"] = bool(dirty.stdout.strip()) if rev.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        out["git_revision"] = None
    return out


class RunFolder:
    """One run folder as `evo compare` reads it: run.yaml and trials.parquet (as a DataFrame)."""

    def __init__(self, path: Path, meta: dict, trials):
        self.path, self.meta, self.trials = path, meta, trials

    @property
    def method(self) -> str:
        return str(self.meta.get("method") or "unknown")

    @property
    def config(self) -> dict:
        return self.meta.get("config") or {}


def read_run(run_dir: str | Path) -> RunFolder:
    """ValueError when ``run_dir`` lacks run.yaml or trials.parquet (not a run folder)."""
    import yaml

    path = Path(run_dir).expanduser().resolve()
    missing = [name for name in ("run.yaml", "trials.parquet") if not (path / name).exists()]
    if missing:
        raise ValueError(f"{run_dir} is not a run folder (no {' or '.join(missing)}); pass folders written by "
                         "evo search or evo baseline, i.e. <storage>/<name>")
    meta = yaml.safe_load((path / "run.yaml").read_text()) or {}
    if not isinstance(meta, dict) or "config" not in meta:
        raise ValueError(f"{path / 'run.yaml'} holds no 'config' mapping; it was not written by evo")
    return RunFolder(path, meta, read_table(path / "trials.parquet", TRIAL_SCHEMA).to_pandas())
