"""Experiment configuration: a frozen dataclass validated at construction, presets, YAML.

Resolution order: preset (``default`` unless named) < YAML file (``--config``) < CLI flags.
Every value is checked here, before Ray starts, with a message naming the bad value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from evo.core.rungs import check_rungs
from hardware.checks import check_bool, check_int, check_number, check_positive, check_probability
from trainables.spec_paths import is_file_location

PRESET_DIR = Path(__file__).with_name("presets")  # evo/runs/presets/*.yaml
STRUCTURES = ("unstructured", "channel")


def absolute_paths(settings: Mapping[str, Any]) -> dict:
    """``settings`` with its file paths (a model's ``file.py``, a ``.npz`` dataset, the weights,
    data_dir) made absolute against the working directory, so a run folder names its inputs
    wherever it is read from (`evo export`, `--resume` from another directory)."""
    out = dict(settings)

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    model = out.get("model")
    if isinstance(model, str) and ":" in model:
        where, function = model.rsplit(":", 1)
        if is_file_location(where):  # a model's file.py:function (trainables.user_model)
            out["model"] = f"{absolute(where)}:{function}"
    if isinstance(out.get("dataset"), str) and out["dataset"].endswith(".npz"):
        out["dataset"] = absolute(out["dataset"])
    for key in ("weights", "data_dir"):
        if isinstance(out.get(key), str) and out[key]:
            out[key] = absolute(out[key])
    return out


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))


@dataclass(frozen=True)
class RunSettings:
    """What every run (evo search, each baseline, ADMM) sets about the model, the data, Ray and its
    run folder, with the validators they share.

    Args:
        model: a zoo name (lenet5, resnet20, mlp) or the user's ``path/to/file.py:function`` /
            ``package.module:function`` returning an nn.Module; model_args: its keyword arguments.
        weights: a state_dict checkpoint used as the base model instead of pretraining.
        dataset: a built-in name (fashion-mnist, digits, cifar10), a ``.npz`` path or a
            ``package.module:function`` returning the arrays; data_dir: where built-in files are.
        val_fraction: the validation split carved from the training set (when the data has none).
        pretrain_epochs: epochs of the base model's recipe (None: the model's default).
        cpus_per_trial, gpus_per_trial: Ray resources of one trial (fractions pack trials).
        max_concurrent: trials at once (0: as many as the cluster holds at start; more: wait for nodes).
        max_failures: retries of a trial whose worker died.
        address: None for a private local Ray, "auto" or host:port to join a running cluster.
        storage, name: the run folder is <storage>/<name>.
        verbose: Ray Tune's own progress output (0: evo's lines only).
    """

    model: str = "lenet5"
    model_args: dict | None = None
    weights: str | None = None
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1
    pretrain_epochs: int | None = None  # None: the model's default recipe
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 2
    address: str | None = None
    storage: str = "runs"
    name: str = "default"
    verbose: int = 0

    def __post_init__(self) -> None:
        for name in ("model", "dataset"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a name or a path")
        if self.model_args is not None and not isinstance(self.model_args, dict):
            raise ValueError(f"model_args={self.model_args!r} must be a mapping of keyword arguments")
        if self.weights is not None and not (isinstance(self.weights, str) and Path(self.weights).expanduser().is_file()):
            raise ValueError(f"weights={self.weights!r}: no such file (a state_dict checkpoint)")
        check_number("val_fraction", self.val_fraction, above=0.0, below=0.5)
        if self.pretrain_epochs is not None:
            check_int("pretrain_epochs", self.pretrain_epochs, minimum=1)
            if self.weights is not None:
                raise ValueError(f"pretrain_epochs={self.pretrain_epochs} with weights={self.weights!r}: the base model "
                                 "is read from the weights and nothing is pretrained; give one of the two")
        check_positive("cpus_per_trial", self.cpus_per_trial)
        check_number("gpus_per_trial", self.gpus_per_trial, minimum=0.0)  # fractions such as 0.25 pack trials
        check_int("max_concurrent", self.max_concurrent, minimum=0)
        check_int("max_failures", self.max_failures, minimum=0)
        if self.verbose not in (0, 1, 2, 3) or isinstance(self.verbose, bool):
            raise ValueError(f"verbose={self.verbose!r}; valid choices: 0, 1, 2, 3")
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name={self.name!r} must be a plain folder name (no '/', not starting with '.')")
        if not isinstance(self.storage, str) or not self.storage:
            raise ValueError(f"storage={self.storage!r} must be a folder path")
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"address={self.address!r} must be 'auto' or host:port")
        paths = absolute_paths({k: getattr(self, k) for k in ("model", "dataset", "weights", "data_dir")})
        for key, value in paths.items():
            object.__setattr__(self, key, value)

    @property
    def run_dir(self) -> Path:
        return Path(self.storage).expanduser().resolve() / self.name


@dataclass(frozen=True)
class SearchConfig(RunSettings):
    """The settings of `evo search` and of the uniform/random/optuna baselines (preset < YAML <
    flags), checked at construction so a bad value fails before Ray starts.

    Args:
        budget, target: the budget text (e.g. ``bops=1/512``) and the hardware target pricing it.
        structure, pin_first_last_8bit, *_choices: the search space (None: the defaults).
        population, generations, seed, crossover_prob: the genetic algorithm.
        fine_tune_steps, batch_size, lr: each screened trial's fine-tune.
        scale_lr: lr of the learned quantizer step sizes (0 freezes the MSE-initialised grids).
        distill_temperature, distill_weight: distillation from the float model (weight 0: off).
        rungs, rung_factor: successive halving inside each generation (``evo.core.rungs``): rung 0
            fine-tunes fine_tune_steps / rung_factor^(rungs-1) steps, the best 1/rung_factor go on
            to rung_factor times longer, up to fine_tune_steps; 1 rung: every trial gets
            fine_tune_steps (the baselines always do).
        sensitivity_samples: training images generation 0's sensitivity-guided policies are
            measured on (0: none; generation 0 is uniform and random policies only).
        final_steps, final_top: the longer fine-tune of the final policies and how many of the
            front get it (beside evo's uniform reference, final_uniform).
        final_seeds: how many times each final policy is fine-tuned and tested (seeds seed,
            seed + 1, ...); the final table reports the mean and the spread.
        final_uniform: evo search only: how many uniform policies, the most accurate screened,
            get the final fine-tune as the in-run reference; the final table compares the best
            evolved policy with the one of them of best mean validation accuracy (the screen
            under-rates uniform policies, so its single pick can be the weaker one after the final).
            Not counted in the method's compute.
        final_fill: evo search only: each front policy chosen for the final fine-tune is first grown
            to use the budget (``evo.core.sensitivity.filled_genome``: the moves that remove the most
            predicted distortion per unit of cost added, while it fits); needs the sensitivity
            (sensitivity_samples > 0).
        surrogate: evo search only: each later generation breeds 3x the children it trains and keeps
            those the sensitivity's predicted distortion, refitted on the run's results, ranks best
            at their cost (``evo.core.prescreen``); without the sensitivity it is off (logged).
        the model, the data, Ray and the run folder: see RunSettings.
    """

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
    generations: int = 4
    seed: int = 0
    crossover_prob: float = 0.9
    # each trial's fine-tune
    fine_tune_steps: int = 80
    batch_size: int = 128
    lr: float = 0.01
    final_steps: int = 500  # the Pareto policies' longer fine-tune before the test split
    final_top: int = 2  # how many Pareto policies (the most accurate) get it, beside evo's uniform reference
    final_seeds: int = 2  # fine-tunes of each final policy (seed, seed + 1, ...): its mean and spread
    final_uniform: int = 2  # evo: the most accurate screened uniform policies fine-tuned as the reference
    final_fill: bool = False  # evo: grow each final front policy to the budget before its fine-tune
    surrogate: bool = False  # evo: pre-screen bred children by the refitted sensitivity (evo.core.prescreen)
    scale_lr: float = 0.05  # learned quantizer step sizes (LSQ); 0 keeps the initial MSE grids
    distill_temperature: float = 4.0
    distill_weight: float = 0.0  # 0: cross-entropy only; > 0 mixes in KL to the float model's logits
    # generation 0's sensitivity-guided policies (evo.core.sensitivity): training images the
    # per-layer Fisher is measured on; 0 leaves them out
    sensitivity_samples: int = 512
    # successive halving inside each generation (evo.core.rungs); 1: off
    rungs: int = 1
    rung_factor: int = 3
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("population", self.population, minimum=4)
        check_int("generations", self.generations, minimum=1)
        for name in ("fine_tune_steps", "final_steps", "final_top", "final_seeds", "final_uniform", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("sensitivity_samples", self.sensitivity_samples, minimum=0)
        check_rungs(self.rungs, self.rung_factor, self.fine_tune_steps)
        check_positive("lr", self.lr)
        check_number("scale_lr", self.scale_lr, minimum=0.0)
        check_positive("distill_temperature", self.distill_temperature)
        check_probability("distill_weight", self.distill_weight)
        check_probability("crossover_prob", self.crossover_prob)
        check_bool("pin_first_last_8bit", self.pin_first_last_8bit)
        check_bool("final_fill", self.final_fill)
        check_bool("surrogate", self.surrogate)
        if self.final_fill and self.sensitivity_samples == 0:
            raise ValueError("final_fill=True needs the per-layer sensitivity: sensitivity_samples=0 turns it off; "
                             "set sensitivity_samples >= 1 or final_fill false")
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure={self.structure!r}; valid choices: {list(STRUCTURES)}")
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
