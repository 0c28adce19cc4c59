"""A run folder as `evo compare` reads it (run.yaml + trials.parquet), and the versions run.yaml records.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from evo.runs.parquet import read_table
from evo.runs.schema import TRIAL_SCHEMA


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
        self.recipe_label = ""  # set by name_recipes: how this search's recipe differs from the others'

    @property
    def method(self) -> str:
        return str(self.meta.get("method") or "unknown")

    @property
    def label(self) -> str:
        """The method as `evo compare` names it. An ADMM run whose recipe differs from the default
        (``ADMMSettings``) names the difference, e.g. 'admm (8+4 epochs)' or 'admm (uniform quantizer)':
        ADMM with its own recipe and ADMM at the searches' compute are two methods of a study, not one
        method with its seeds run twice. A search run's name carries its recipe when the compared runs
        of its method have several (``name_recipes``)."""
        if self.method != "admm":
            return f"{self.method} ({self.recipe_label})" if self.recipe_label else self.method
        from trainables.knapsack import ADMMSettings

        default, config = ADMMSettings(), self.config
        value = {f.name: config.get(f"admm_{f.name}", getattr(default, f.name)) for f in fields(ADMMSettings)}
        parts = []
        if (value["epochs"], value["fine_tune_epochs"]) != (default.epochs, default.fine_tune_epochs):
            parts.append(f"{value['epochs']}+{value['fine_tune_epochs']} epochs")
        if value["quantizer"] != default.quantizer:
            parts.append(f"{value['quantizer']} quantizer")
        parts += [f"{name} {value[name]:g}" if isinstance(value[name], float) else f"{name} {value[name]}"
                  for name in value if name not in ("epochs", "fine_tune_epochs", "quantizer", "seed")
                  and value[name] != getattr(default, name)]
        return f"admm ({', '.join(parts)})" if parts else "admm"

    @property
    def config(self) -> dict:
        return self.meta.get("config") or {}

    @property
    def recipe(self) -> dict:
        """A search run's settings that decide its result besides the budget, the seed and the base
        model (``search_recipe``)."""
        return search_recipe(self.config)

    @property
    def recipe_changes(self) -> str | None:
        """A search run's settings that are not at their default (``search_recipe``), e.g.
        'generations 2, final_steps 2250', '' for the default recipe. The report's run table lists
        them, so a report of one non-default recipe (whose runs keep the plain method name,
        ``name_recipes``) still says what ran. ADMM: None (not a search run; its ``label`` names
        its recipe)."""
        if self.method == "admm":
            return None
        defaults = search_recipe({})
        return _changes(self.recipe, defaults, keys=defaults)

    @property
    def batch_size(self) -> int | None:
        """Fine-tune samples per step: the run's batch size (an ADMM run's is its recipe's,
        ``admm_batch_size``: ADMMConfig.to_dict flattens the recipe with an ``admm_`` prefix)."""
        config = self.config
        value = config.get("batch_size", config.get("admm_batch_size"))
        return int(value) if isinstance(value, (int, float)) and value > 0 else None



def search_recipe(config: dict) -> dict:
    """The settings of a search run (evo search, the uniform/random/optuna baselines) that decide
    its result besides the budget, the seed and the base model: every ``SearchConfig`` field but
    the model, data, Ray and folder ones (``RunSettings``), budget, target and seed — though
    ``val_fraction`` counts: it sets which images select the policies (and what the base model
    trains on), so runs on 10 % and on 20 % validation splits are different methods; a setting
    absent from ``config`` (a run older than it) takes its default. ``final_uniform`` does not
    count: it sizes evo's in-run uniform reference, which a comparison leaves out."""
    from evo.runs.config import RunSettings, SearchConfig

    skip = ({f.name for f in fields(RunSettings)} - {"val_fraction"}) | {"budget", "target", "seed", "extra",
                                                                         "final_uniform"}
    defaults = SearchConfig()
    recipe = {}
    for f in fields(SearchConfig):
        if f.init and f.name not in skip:
            value = config.get(f.name, getattr(defaults, f.name))
            recipe[f.name] = list(value) if isinstance(value, tuple) else value
    return recipe


def name_recipes(runs) -> None:
    """Runs of one search method with different recipes are different methods of a comparison (a
    study of evo's default against evo with longer finals is not one method with its seeds run
    twice): each such run is named by the settings, among those that differ between the method's
    runs, in which it differs from the defaults, e.g. 'evo (final_steps 2250, final_top 1)'. Runs
    of one recipe keep the method's name. ADMM's runs name their recipe themselves
    (``RunFolder.label``). Idempotent: `evo compare` calls it wherever runs are grouped."""
    defaults = search_recipe({})
    by_method: dict[str, list] = {}
    for run in runs:
        if run.method != "admm":
            by_method.setdefault(run.method, []).append(run)
    for group in by_method.values():
        recipes = [run.recipe for run in group]
        varying = [key for key in defaults if len({json.dumps(r[key], sort_keys=True) for r in recipes}) > 1]
        for run, recipe in zip(group, recipes):
            run.recipe_label = _changes(recipe, defaults, keys=varying)


def _changes(recipe: dict, defaults: dict, keys) -> str:
    """'key value, ...' for the ``keys`` in which ``recipe`` differs from ``defaults``."""
    return ", ".join(f"{key} {_setting(recipe[key])}" for key in keys if recipe[key] != defaults[key])


def _setting(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return str(value)


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
