"""Everything a run needs that can be checked before Ray starts: the run folder, the data,
the base model (pretrained through the cache), its layer specs, the target, the budget and
whether any policy of the search space can meet it. Nothing is written here except the
pretraining cache."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evo.runs.config import SearchConfig, absolute_paths
from evo.core.cost_table import make_cost_fn
from evo.core.space import SearchSpace
from hardware.budget import budget_limit, parse_budget
from hardware.specs import LayerSpec, keep_ratio_setters
from hardware.targets import load_target
from trainables.data import SPLIT_SEED  # one validation split for every seed, so seeds compare on the same data


# Settings that may change between a run and its --resume; any other difference is an error.
# storage and name only locate the run folder: a folder moved or renamed since resumes (and exports)
RESUMABLE_CHANGES = ("verbose", "address", "max_concurrent", "max_failures", "storage", "name")
BASE_SEED = 0  # one pretrained base model for every search seed


@dataclass
class Prepared:
    cfg: SearchConfig
    splits: object  # trainables.data.DataSplits (numpy arrays)
    base_state: dict
    base_val_accuracy: float
    base_test_accuracy: float
    specs: list[LayerSpec]
    target: object
    budget: object
    limit: float
    space: SearchSpace
    cost_fn: Callable
    model_ref: dict  # trainables.user_model reference of the model
    base_epochs: int | None = None  # the base model's pretraining epochs (None: --weights)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir


def check_run_dir(cfg: SearchConfig, resume: bool) -> dict | None:
    """Refuse to overwrite another run; on resume, return the saved run.yaml and refuse a changed config."""
    import yaml

    run_yaml = cfg.run_dir / "run.yaml"
    if not resume:
        if run_yaml.exists():
            raise ValueError(f"run folder {cfg.run_dir} already holds a run (run.yaml); "
                             "pass --resume to continue it, or --name / --storage for a new one")
        return None
    if not run_yaml.exists():
        raise ValueError(f"--resume: no run to resume at {cfg.run_dir} (no run.yaml)")
    saved = yaml.safe_load(run_yaml.read_text()) or {}
    now = cfg.to_dict()
    # a setting newer than the run (absent from its run.yaml) matches while it keeps its default
    # a run made before paths were stored absolute named them relative to the directory it started in
    before = absolute_paths({**{k: v for k, v in _defaults(cfg).items() if k in now}, **saved.get("config", {})})
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(f"--resume: the config differs from the run in {cfg.run_dir} ({detail}); "
                         "resume with the same settings or start a new run with --name")
    return saved


def _defaults(cfg) -> dict:
    """The default of every setting of ``cfg``'s config class, as ``to_dict`` writes it."""
    import dataclasses

    values = {}
    for f in dataclasses.fields(cfg):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def build_space(cfg: SearchConfig, specs: list[LayerSpec]) -> SearchSpace:
    kwargs = {}
    for name in ("sparsity_choices", "keep_ratio_choices", "weight_bit_choices", "activation_bit_choices"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    fixed = ()
    if cfg.structure == "channel":  # genes that cannot change the policy are not searched
        setters = keep_ratio_setters(specs)
        fixed = tuple(s.name for s in specs if s.name not in setters)
    return SearchSpace(layer_names=tuple(s.name for s in specs), structure=cfg.structure,
                       pin_first_last_8bit=cfg.pin_first_last_8bit, fixed_pruning=fixed, **kwargs)


@dataclass
class Inputs:
    """The data, the model (built, not yet trained), its picklable reference and its layer specs."""

    splits: object  # trainables.data.DataSplits
    model: object  # torch.nn.Module
    model_ref: dict  # trainables.user_model reference: what a Ray worker rebuilds the model from
    specs: list[LayerSpec]


@dataclass
class BaseModel:
    state_dict: dict
    val_accuracy: float
    test_accuracy: float
    source: str  # "pretrained", "cached" or the --weights path
    epochs: int | None = None  # pretraining epochs (None: --weights)


# A user's model's default pretraining until 2026-12-07 (trainables.pretrain.user_epochs since): what
# a run that left the epochs to the default and recorded none in its run.yaml started with.
LEGACY_USER_EPOCHS = 10


def pinned_epochs(cfg, inputs: Inputs, saved: dict | None) -> int | None:
    """The base model's pretraining epochs: ``cfg.pretrain_epochs``; when a resumed run (``saved``:
    its run.yaml, as ``check_run_dir`` returns it) left them to the default, the epochs it started
    with (``base_model.epochs``; for a user's model in an older run.yaml without them,
    LEGACY_USER_EPOCHS), so a changed default never swaps the base model under a run."""
    if cfg.pretrain_epochs is not None or cfg.weights is not None or saved is None:
        return cfg.pretrain_epochs
    recorded = (saved.get("base_model") or {}).get("epochs")
    if recorded is not None:
        return int(recorded)
    return LEGACY_USER_EPOCHS if saved and inputs.model_ref.get("kind") == "user" else None


def load_inputs(cfg, *, log: Callable = print) -> Inputs:
    """Data, model and specs of a run (every method): a bad dataset or model spec raises here."""
    from hardware.profiler import profile_model
    from trainables.data import load_dataset
    from trainables.user_model import resolve_model

    splits = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction, seed=SPLIT_SEED)
    model, model_ref = resolve_model(cfg.model, cfg.model_args, in_channels=splits.in_channels,
                                     num_classes=splits.num_classes, image_shape=splits.image_shape)
    specs = profile_model(model, splits.image_shape)
    return Inputs(splits=splits, model=model, model_ref=model_ref, specs=specs)


def base_model(cfg, inputs: Inputs, *, saved: dict | None = None, log: Callable = print) -> BaseModel:
    """The float base model: ``cfg.weights`` loaded into the model (a mismatch names the first bad
    parameter), else pretrained through the checkpoint cache (for ``pinned_epochs`` of a resumed
    run's ``saved`` run.yaml). Its accuracies
    are the float reference of the final table (the test split is read here once, for that line)."""
    from trainables.pretrain import pretrain

    if cfg.weights is None:
        base = pretrain(cfg.model, cfg.dataset, epochs=pinned_epochs(cfg, inputs, saved), seed=BASE_SEED,
                        data_dir=cfg.data_dir, val_fraction=cfg.val_fraction, model_ref=inputs.model_ref, log=log)
        return BaseModel(base.state_dict, base.val_accuracy, base.test_accuracy,
                         "cached" if base.cached else "pretrained", base.epochs)
    from trainables.data import to_tensors
    from trainables.train import evaluate
    from trainables.user_model import fit_weights, read_weights

    state_dict, meta = read_weights(cfg.weights)
    model = fit_weights(inputs.model, state_dict, cfg.weights)
    check_held_out(cfg, meta, inputs.splits, resumed_log=None if saved is None else log)
    tensors = to_tensors(inputs.splits)
    val, test = (evaluate(model, x, y) for x, y in ((tensors.val_x, tensors.val_y), (tensors.test_x, tensors.test_y)))
    return BaseModel({k: v.detach().clone() for k, v in model.state_dict().items()}, val["accuracy"],
                     test["accuracy"], cfg.weights)


def check_held_out(cfg, meta: dict | None, splits, *, resumed_log: Callable | None = None) -> None:
    """Refuse ``cfg.weights`` that evo pretrained on images this run validates on: an evo
    checkpoint (``meta``, as ``trainables.user_model.read_weights`` returns it) of the same data
    (``trainables.pretrain.data_key``) that held out another split (an older evo's, of another
    seed) or a smaller one (``val_fraction``), where the run carves its validation split from the
    training examples. Selecting policies on images the
    base model trained on would reward its memory. A plain state_dict says nothing of its data and
    passes. On a resumed run (``resumed_log``, also `evo export`) the choice was made when it
    started, so it is logged as a warning instead."""
    from trainables.data import trained_on_validation
    from trainables.pretrain import data_key

    if meta is None or not splits.carved:
        return
    same_data = meta["data_key"] == data_key(cfg.dataset) if "data_key" in meta \
        else meta.get("dataset_name") == cfg.dataset  # an older evo's checkpoint: by name
    seed, fraction = meta.get("split_seed", meta.get("seed")), meta.get("val_fraction")
    if not same_data or not isinstance(seed, int) or not isinstance(fraction, float):
        return
    total = len(splits.train_y) + len(splits.val_y)  # load_inputs keeps every training example (no limit_train)
    seen = trained_on_validation(total, (seed, fraction), (SPLIT_SEED, cfg.val_fraction))
    if not seen:
        return
    who = "evo" if "split_seed" in meta else "an older evo"
    problem = (f"--weights {cfg.weights!r}: {who} pretrained that base model on {seen} of the "
               f"{len(splits.val_y)} validation images this run validates on (it held out the split of seed {seed} at "
               f"val_fraction {fraction:g}; runs validate on seed {SPLIT_SEED}'s split at val_fraction "
               f"{cfg.val_fraction:g}), so validation accuracy would reward what it memorised")
    if resumed_log is not None:
        resumed_log(f"warning: {problem}; this run started with it, so it goes on")
        return
    raise ValueError(f"{problem}. Leave out --weights (the run then pretrains a base model that holds out its split, "
                     f"or takes one from the cache), or pretrain one with `{pretrain_command(cfg)}` (any --seed) "
                     "and pass the checkpoint it prints as --weights")


def pretrain_command(cfg) -> str:
    """The `evo pretrain` command line that makes ``cfg``'s base model (its model, model_args, data,
    data folder and validation share), quoted for a POSIX shell."""
    import json
    import shlex

    words = ["evo", "pretrain", "--model", cfg.model]
    if getattr(cfg, "model_args", None):
        words += ["--model-args", json.dumps(cfg.model_args)]
    words += ["--dataset", cfg.dataset]
    if getattr(cfg, "data_dir", None):
        words += ["--data-dir", cfg.data_dir]
    return shlex.join(words + ["--val-fraction", f"{cfg.val_fraction:g}"])


def prepare(cfg: SearchConfig, *, resume: bool = False, log: Callable = print) -> Prepared:
    from evo.core.repair import cheapest_genome

    check_address(cfg.address)  # an unreachable cluster fails in seconds, before the data and the base model
    saved = check_run_dir(cfg, resume)
    target = load_target(cfg.target)
    budget = parse_budget(cfg.budget)
    inputs = load_inputs(cfg, log=log)
    splits, specs = inputs.splits, inputs.specs
    limit = budget_limit(budget, specs, target)
    space = build_space(cfg, specs)
    cost_fn = make_cost_fn(space, specs, target, budget.metric)
    cheapest = cheapest_genome(space)
    cheapest_cost = cost_fn(cheapest)
    if cheapest_cost > limit:
        raise ValueError(
            f"budget {cfg.budget} ({budget.metric} <= {limit:.6g}) cannot be met: the cheapest policy of the search "
            f"space costs {cheapest_cost:.6g} ({space.decode(cheapest).to_dict()['layers']}); "
            "loosen the budget or widen the choice tables"
        )
    base = base_model(cfg, inputs, saved=saved, log=log)
    log(f"base model {cfg.model} on {cfg.dataset}: validation accuracy {base.val_accuracy:.4f} ({base.source}); "
        f"budget {budget.metric} <= {limit:.6g} on target {target.name}")
    return Prepared(cfg=cfg, splits=splits, base_state=base.state_dict, base_val_accuracy=base.val_accuracy,
                    base_test_accuracy=base.test_accuracy, specs=specs, target=target, budget=budget, limit=limit,
                    space=space, cost_fn=cost_fn, model_ref=inputs.model_ref, base_epochs=base.epochs)


ADDRESS_CONNECT_SECONDS = 5.0



def check_address(address: str | None) -> None:
    """Fail in seconds where nothing listens at a host:port ``--address``: ray.init would retry
    its GCS connection for a minute or more before giving up."""
    if address in (None, "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address {address!r}: expected 'auto', host:port (e.g. 10.0.0.5:6379) or "
                         "ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_CONNECT_SECONDS).close()
    except OSError as err:
        raise ValueError(f"--address {address!r}: nothing answers there ({err}); start a cluster with "
                         "`ray start --head` (see clusters/local-multinode.md) or drop --address for a local run"
                         ) from None
