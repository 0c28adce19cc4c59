"""Run-folder tables: Parquet datasets streamed one part file per row batch, and atomic YAML/JSON.

A Parquet file cannot be appended in place, so every table is a *folder*
(``trials.parquet/part-00042.parquet``); each part is written to a temporary name and
renamed, so a killed driver never leaves a half-written part. ``compact`` folds the parts
into one at the end. pandas, pyarrow and DuckDB read the folder as one table::

    pd.read_parquet("runs/default/trials.parquet")
    duckdb.sql("select * from 'runs/default/trials.parquet/*.parquet'")
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from evo.runs.schema import TRIAL_SCHEMA, conform


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
