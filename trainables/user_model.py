"""Bring your own model: ``file.py:function`` or ``package.module:function`` specs.

Any callable returning an ``nn.Module`` works; it gets only the user's keyword arguments
(``--model-args`` JSON), while zoo names get the dataset's shape arguments. Ray workers
cannot receive a parametrized or file-defined module by pickle, so the driver hands them a
*model reference* (a plain dict) that ``build_from_reference`` turns back into the module:
a file path is imported by path in the worker (it must exist there too: shared storage),
a module path by ``importlib``. ``model_source_hash`` keys caches on the factory's source.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .compress import COMPRESSIBLE
from .models import MODELS, create_model
from .spec_paths import is_file_location

SPEC_FORMS = "'path/to/file.py:function' or 'package.module:function'"


def is_user_spec(spec: str) -> bool:
    """True for a factory spec (it holds ':') or a pickled factory (``.pkl``), False for a zoo name."""
    return ":" in spec or spec.endswith(".pkl")


def load_pickled_factory(path: str) -> Callable[[], nn.Module]:
    """A zero-argument model factory pickled by ``evo.search`` (cloudpickle, so a model class
    defined in the user's own script travels by value). Unpickling runs code: only files evo
    wrote into its cache for this user are read here."""
    import pickle

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"model {path!r}: pickled model factory not found (a worker needs the shared cache folder)")
    with open(file, "rb") as handle:
        factory = pickle.load(handle)
    if not callable(factory):
        raise ValueError(f"model {path!r}: holds a {type(factory).__name__}, not a model factory")
    return factory


def parse_model_args(text: str | None) -> dict:
    """The JSON object of ``--model-args`` as a dict ({} for None or empty)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-args {text!r} is not valid JSON ({err}); example: '{{\"width\": 2}}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"--model-args {text!r} must be a JSON object of keyword arguments, not {type(value).__name__}")
    return value


def _split_spec(spec: str) -> tuple[str, str]:
    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise ValueError(f"model {spec!r}: expected {SPEC_FORMS}, or a zoo name {sorted(MODELS)}")
    return where, function


def _import_file(path: Path, spec: str):
    """Import a .py file by path, once per process (a stable module name per resolved path)."""
    name = "evo_user_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before exec, so classes defined there resolve their module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ValueError(f"model {spec!r}: importing {path} failed ({type(err).__name__}: {err})") from err
    return module


def _import_module(where: str, spec: str):
    try:
        return importlib.import_module(where)
    except Exception as err:  # ImportError, or whatever the module raises while importing
        raise ValueError(f"model {spec!r}: cannot import module {where!r} ({type(err).__name__}: {err}); "
                         f"expected {SPEC_FORMS}") from err


def absolute_spec(spec: str) -> str:
    """The spec with a file path made absolute, so a worker in another folder finds it."""
    where, function = _split_spec(spec)
    if not is_file_location(where):
        return spec
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"model {spec!r}: file {where!r} does not exist (looked at {path})")
    return f"{path}:{function}"


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """The callable a user spec names; ValueError if the file, module or function is missing."""
    spec = absolute_spec(spec)
    where, function = _split_spec(spec)
    module = _import_file(Path(where), spec) if is_file_location(where) else _import_module(where, spec)
    factory = getattr(module, function, None)
    if factory is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ValueError(f"model {spec!r}: {where} has no function {function!r}; its callables: {public}")
    if not callable(factory):
        raise ValueError(f"model {spec!r}: {function!r} is a {type(factory).__name__}, not a callable")
    return factory


def build_user_model(spec: str, model_args: dict | None = None) -> nn.Module:
    """Call the factory with ``model_args`` and check it returns a module evo can compress."""
    factory = load_pickled_factory(spec) if spec.endswith(".pkl") else load_factory(spec)
    model_args = dict(model_args or {})
    try:
        model = factory(**model_args)
    except Exception as err:
        raise ValueError(f"model {spec!r}: calling {getattr(factory, '__name__', spec)}(**{model_args!r}) raised "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {spec!r}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    if not any(isinstance(m, COMPRESSIBLE) for m in model.modules()):
        raise ValueError(f"model {spec!r}: {type(model).__name__} has no Conv2d or Linear layer; "
                         "evo compresses those layers only")
    return model


def resolve_model(spec: str, model_args: dict | None, *, in_channels: int, num_classes: int,
                  image_shape) -> tuple[nn.Module, dict]:
    """The model a ``--model`` spec names and its picklable reference (``build_from_reference``).

    Zoo names get the dataset's shapes; a user factory gets only ``model_args``."""
    if spec.endswith(".pkl"):
        reference = {"kind": "user", "spec": str(Path(spec).expanduser().resolve()), "model_args": {}}
    elif is_user_spec(spec):
        reference = {"kind": "user", "spec": absolute_spec(spec), "model_args": dict(model_args or {})}
    else:
        if model_args:
            raise ValueError(f"model {spec!r} is a zoo model: it takes no --model-args (got {model_args!r})")
        reference = {"kind": "zoo", "name": spec, "in_channels": in_channels, "num_classes": num_classes,
                     "image_shape": [int(d) for d in image_shape]}
    return build_from_reference(reference), reference


def build_from_reference(reference: dict) -> nn.Module:
    """Rebuild the module of a model reference (in the driver or a Ray worker)."""
    if reference.get("kind") == "zoo":
        return create_model(reference["name"], in_channels=reference["in_channels"],
                            num_classes=reference["num_classes"], image_shape=tuple(reference["image_shape"]))
    if reference.get("kind") == "user":
        return build_user_model(reference["spec"], reference["model_args"])
    raise ValueError(f"model reference {reference!r}: kind must be one of ['zoo', 'user']")


def model_source_hash(reference: dict) -> str:
    """16 hex digits over the factory module's source file and the JSON of its arguments, so
    a cache (the pretrained checkpoint) goes stale when the user edits the model."""
    if reference.get("kind") == "zoo":
        source, arguments = inspect.getsourcefile(create_model), reference
    elif reference["spec"].endswith(".pkl"):
        source, arguments = reference["spec"], {}
    else:
        source, arguments = inspect.getsourcefile(load_factory(reference["spec"])), reference["model_args"]
    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update(json.dumps(arguments, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict checkpoint (or a dict holding one under "state_dict") into ``model``
    (``read_weights`` then ``fit_weights``)."""
    return fit_weights(model, read_weights(path)[0], path)


def read_weights(path: str | Path) -> tuple[dict, dict | None]:
    """(state_dict, meta) of a checkpoint read with ``torch.load(weights_only=True)``, which cannot
    run code: a plain state_dict, or a dict holding one under "state_dict"; ``meta`` is what an evo
    checkpoint (trainables.pretrain) carries beside it (how it was pretrained: dataset, seed,
    validation split), None for any other file. What is wrong with the file is named."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"--weights {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (not a zip/pickle), ...
        raise ValueError(f"--weights {str(path)!r} is not a weights-only torch checkpoint ({err})") from None
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"--weights {str(path)!r} holds no state_dict (a dict of tensors, or a dict with one "
                         "under 'state_dict')")
    return checkpoint, meta if isinstance(meta, dict) else None


def fit_weights(model: nn.Module, state_dict: dict, path: str | Path) -> nn.Module:
    """``state_dict`` (read from ``path``) loaded into ``model``; mismatches are named."""
    _check_state_dict(model.state_dict(), state_dict, Path(path).expanduser())
    model.load_state_dict(state_dict)
    return model


def _check_state_dict(expected: dict, found: dict, path: Path) -> None:
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    if missing or unexpected:
        raise ValueError(f"--weights {str(path)!r} does not fit the model: missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise ValueError(f"--weights {str(path)!r}: parameter {key!r} has shape {tuple(found[key].shape)} "
                             f"in the file but {tuple(tensor.shape)} in the model")
