"""Experiment configuration: a frozen dataclass validated at construction, presets, YAML.

Resolution order: preset (``default`` unless named) < YAML file (``--config``) < CLI flags.
Every value is checked here, before Ray starts, with a message naming the bad value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

PRESET_DIR = Path(__file__).with_name("presets")
STRUCTURES = ("unstructured", "channel")


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))


@dataclass(frozen=True)
class SearchConfig:
    # what to compress
    model: str = "lenet5"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1
    pretrain_epochs: int | None = None  # None: the model's default recipe
    # the budget and how it is priced
    budget: str = "bops=1/512"
    target: str = "bitserial"
    # the search space
    structure: str = "unstructured"
    pin_first_last_8bit: bool = False
    sparsity_choices: tuple[float, ...] | None = None
    keep_ratio_choices: tuple[float, ...] | None = None
    weight_bit_choices: tuple[int, ...] | None = None
    activation_bit_choices: tuple[int, ...] | None = None
    # the genetic algorithm
    population: int = 10
    generations: int = 6
    seed: int = 0
    crossover_prob: float = 0.9
    # each trial's fine-tune
    fine_tune_steps: int = 80
    batch_size: int = 128
    lr: float = 0.01
    final_steps: int = 500  # the Pareto policies' longer fine-tune before the test split
    final_top: int = 3  # how many Pareto policies (the most accurate) get it, beside the best uniform one
    # Ray
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the cluster's CPUs (or GPUs) hold at start; more: wait for nodes
    max_failures: int = 2  # retries of a trial whose worker died
    address: str | None = None  # None: a private local Ray; "auto": join the running cluster
    storage: str = "runs"
    name: str = "default"
    verbose: int = 0  # Ray Tune's own progress output (0 = evo's lines only)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _check_positive_int(self, "population", minimum=4)
        _check_positive_int(self, "generations", minimum=1)
        _check_positive_int(self, "fine_tune_steps", minimum=1)
        _check_positive_int(self, "final_steps", minimum=1)
        _check_positive_int(self, "final_top", minimum=1)
        _check_positive_int(self, "batch_size", minimum=1)
        _check_positive_int(self, "max_failures", minimum=0)
        _check_positive_int(self, "max_concurrent", minimum=0)
        _check_positive_int(self, "seed", minimum=0)
        if self.pretrain_epochs is not None:
            _check_positive_int(self, "pretrain_epochs", minimum=1)
        for name in ("lr", "cpus_per_trial"):
            _check_positive_float(self, name)
        if not (0.0 < float(self.val_fraction) < 0.5):
            raise ValueError(f"val_fraction={self.val_fraction!r} must be in (0, 0.5)")
        if not (0.0 <= float(self.crossover_prob) <= 1.0):
            raise ValueError(f"crossover_prob={self.crossover_prob!r} must be in [0, 1]")
        if not isinstance(self.gpus_per_trial, (int, float)) or self.gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial={self.gpus_per_trial!r} must be >= 0 (fractions such as 0.25 pack trials)")
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure={self.structure!r}; valid choices: {list(STRUCTURES)}")
        if self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"verbose={self.verbose!r}; valid choices: 0, 1, 2, 3")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name={self.name!r} must be a plain folder name")
        for name in ("sparsity_choices", "keep_ratio_choices", "weight_bit_choices", "activation_bit_choices"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        self._check_names()

    def _check_names(self) -> None:
        # Names are validated against the registries so a typo fails before Ray starts.
        from hardware.budget import parse_budget
        from hardware.targets import TARGET_NAMES, load_target

        parse_budget(self.budget)
        if self.target not in TARGET_NAMES and not Path(self.target).is_file():
            raise ValueError(f"target={self.target!r} is unknown; valid choices: {list(TARGET_NAMES)} or a path to a target YAML")
        load_target(self.target)

    # -- derived ----------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.storage).expanduser().resolve() / self.name

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if not out["extra"]:
            out.pop("extra")
        return out

    def replace(self, **changes) -> "SearchConfig":
        return dataclasses.replace(self, **changes)

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "config") -> "SearchConfig":
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"{where}: unknown settings {unknown}; valid settings: {valid}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"{where}: {err}") from None


def read_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def load_preset(name: str) -> dict:
    if name not in preset_names():
        raise ValueError(f"preset {name!r} is unknown; valid choices: {list(preset_names())}")
    return read_yaml(PRESET_DIR / f"{name}.yaml")


def resolve_config(preset: str | None = None, config_file: str | None = None, overrides: Mapping | None = None) -> SearchConfig:
    """preset < YAML file < overrides (None values in overrides are ignored)."""
    data = dict(load_preset(preset or "default"))
    where = f"preset {preset or 'default'}"
    if config_file:
        data.update(read_yaml(config_file))
        where = f"config file {config_file}"
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return SearchConfig.from_mapping(data, where=where)


def _check_positive_int(cfg, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_positive_float(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name}={value!r} must be a positive number")
