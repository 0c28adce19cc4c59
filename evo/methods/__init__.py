"""The methods evo runs and compares, each an entry of one list; every one goes through the same
run pipeline (evo.runs.pipeline) and supplies only what differs, above all its screening:

- ``evo``: the NSGA-II search (evo search);
- ``uniform``: the least-pruned uniform policy of each bit pair within the budget;
- ``random``: Ray Tune random search over repaired genomes, as many trials as evo trains;
- ``optuna``: Ray Tune's OptunaSearch with Optuna's constrained NSGA-II;
- ``admm``: the constrained-gradient baseline of Yang et al. (CVPR 2020).
"""

from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["METHODS", "create_method", "run_method"]

# name -> (module, class); imported on use, so `evo --help` and the pure core load no Ray
METHODS = {
    "evo": ("evo.methods.evolve", "Evolve"),
    "uniform": ("evo.methods.uniform", "Uniform"),
    "random": ("evo.methods.random_search", "RandomSearch"),
    "optuna": ("evo.methods.optuna_search", "OptunaNSGA2"),
    "admm": ("evo.methods.admm", "ADMM"),
}


def create_method(name: str):
    """The method object behind a name (imports only that method's module)."""
    if name not in METHODS:
        raise ValueError(f"method {name!r} is unknown; valid choices: {list(METHODS)}")
    module, class_name = METHODS[name]
    return getattr(importlib.import_module(module), class_name)()


def run_method(name: str, cfg, *, resume: bool = False, log: Callable = print):
    """Run one method through the pipeline; returns its evo.runs.pipeline.RunOutcome."""
    from evo.runs.pipeline import run_pipeline

    return run_pipeline(create_method(name), cfg, resume=resume, log=log)
