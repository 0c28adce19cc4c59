"""evo: find how to compress a neural network for a piece of hardware.

The Python API (imported on first use, so ``import evo.core`` stays free of torch and Ray):

- ``evo.search(model, data, budget=..., **settings)``: the search on your own model and data;
- ``evo.profile(model, input_shape)``: the per-layer cost table of a model;
- ``evo.export(run_dir, out=...)``: a run's policy as packed weights + ONNX;
- ``evo.load_compressed(path)``: the model of a ``model.evo.pt`` file.
"""

__all__ = ["export", "load_compressed", "profile", "search"]


def __getattr__(name: str):
    if name in ("search", "profile", "export", "SearchResult"):
        from evo import api

        return getattr(api, name)
    if name == "load_compressed":
        from trainables.export import load_compressed

        return load_compressed
    raise AttributeError(f"module 'evo' has no attribute {name!r}")
