"""The run folder: config and presets (config), what is checked before Ray starts (prepare), the
Parquet schemas and writers (schema, parquet), the recorder and what --resume reads (recorder,
resume), reading a finished run (folder), the one run pipeline (pipeline) and its final table
(summary)."""

from evo.runs.config import RunSettings, SearchConfig, resolve_config
from evo.runs.folder import RunFolder, read_run, versions
from evo.runs.parquet import PartWriter, compact, read_table
from evo.runs.schema import GENERATION_SCHEMA, TRIAL_SCHEMA

__all__ = ["GENERATION_SCHEMA", "TRIAL_SCHEMA", "PartWriter", "RunFolder", "RunSettings", "SearchConfig", "compact",
           "read_run", "read_table", "resolve_config", "versions"]
