"""Bring your own data: an ``.npz`` file or a ``package.module:function`` returning arrays.

The arrays are ``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val`` (else
``data.load_dataset`` carves the seeded validation subset out of training, as for the
built-in datasets). Images are N x C x H x W (N x H x W gets C = 1) or feature vectors
N x D; float or uint8 (scaled to [0, 1] here, then standardized with the training split's
statistics like every dataset). Labels are integers 0 .. classes-1. npz is read with
``allow_pickle=False``, so a data file cannot run code. Every check names the array.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import numpy as np

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")
SPLITS = (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test"))


def load_user_arrays(spec: str) -> dict[str, np.ndarray]:
    """The checked arrays of an .npz path or a ``package.module:function`` spec: images
    float32 (N, C, H, W) or (N, D), labels int64."""
    arrays = _read_npz(spec) if spec.endswith(".npz") else _call_loader(spec)
    return check_arrays(arrays, source=spec)


def user_dataset_info(spec: str) -> dict:
    """in_channels, num_classes, image_shape of a user's dataset (as ``data.dataset_info``)."""
    arrays = load_user_arrays(spec)
    shape = tuple(int(d) for d in arrays["x_train"].shape[1:])
    return {"in_channels": shape[0], "num_classes": int(arrays["y_train"].max()) + 1, "image_shape": shape}


def dataset_source_hash(spec: str) -> str:
    """16 hex digits over the .npz file's bytes, or the loader module's source file, so a
    cache keyed on the dataset (the pretrained checkpoint) goes stale when the data changes."""
    if spec.endswith(".npz"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ValueError(f"dataset {spec!r}: file {str(path)!r} does not exist")
    else:
        where = spec.rpartition(":")[0]
        path = Path(inspect.getsourcefile(_import(where, spec)))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(spec.rpartition(":")[2].encode() if ":" in spec else b"")
    return digest.hexdigest()[:16]


def _import(where: str, spec: str):
    try:
        return importlib.import_module(where)
    except Exception as err:
        raise ValueError(f"dataset {spec!r}: cannot import module {where!r} ({type(err).__name__}: {err}); "
                         "expected file.npz or package.module:function") from err


def _read_npz(spec: str) -> dict[str, np.ndarray]:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(f"dataset {spec!r}: file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as err:  # object arrays need pickle, which is refused
        raise ValueError(f"dataset {spec!r}: cannot read it without pickle ({err}); store plain numeric arrays") from err
    except (OSError, EOFError) as err:
        raise ValueError(f"dataset {spec!r}: not a readable .npz file ({err})") from err


def _call_loader(spec: str) -> dict[str, np.ndarray]:
    where, _, function = spec.rpartition(":")
    module = _import(where, spec)
    loader = getattr(module, function, None)
    if not callable(loader):
        raise ValueError(f"dataset {spec!r}: module {where!r} has no function {function!r}")
    try:
        arrays = loader()
    except Exception as err:
        raise ValueError(f"dataset {spec!r}: {function}() raised {type(err).__name__}: {err}") from err
    if not isinstance(arrays, dict):
        raise ValueError(f"dataset {spec!r}: {function}() returned a {type(arrays).__name__}, not a dict of arrays "
                         f"{list(REQUIRED)}")
    return {key: np.asarray(value) for key, value in arrays.items()}


def check_arrays(arrays: dict[str, np.ndarray], *, source: str) -> dict[str, np.ndarray]:
    """Validate and convert (see module doc); ValueError naming the array at fault."""
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise ValueError(f"dataset {source!r}: missing array(s) {missing}; it has {sorted(arrays)}; "
                         f"required: {list(REQUIRED)}, optional: {list(OPTIONAL)}")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise ValueError(f"dataset {source!r}: give both x_val and y_val or neither (it has only "
                         f"{'x_val' if 'x_val' in arrays else 'y_val'})")
    checked: dict[str, np.ndarray] = {}
    for x_key, y_key in SPLITS:
        if x_key in arrays:
            checked[x_key] = _images(arrays[x_key], x_key, source)
            checked[y_key] = _labels(arrays[y_key], y_key, source)
            if len(checked[x_key]) != len(checked[y_key]):
                raise ValueError(f"dataset {source!r}: {x_key} has {len(checked[x_key])} samples but {y_key} has "
                                 f"{len(checked[y_key])} labels")
    shape = checked["x_train"].shape[1:]
    for x_key in ("x_val", "x_test"):
        if x_key in checked and checked[x_key].shape[1:] != shape:
            raise ValueError(f"dataset {source!r}: {x_key} samples have shape {checked[x_key].shape[1:]} but "
                             f"x_train's have {shape}")
    _check_classes(checked, source)
    return checked


def _images(x: np.ndarray, key: str, source: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]  # N x H x W: one channel
    if x.ndim not in (2, 4) or len(x) == 0:
        raise ValueError(f"dataset {source!r}: {key} has shape {x.shape}; expected N x C x H x W, N x H x W or "
                         "N x D with N >= 1")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"dataset {source!r}: {key} has dtype {x.dtype}; expected float32 or uint8")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"dataset {source!r}: {key} holds NaN or infinite values "
                         f"({int((~np.isfinite(x)).sum())} of {x.size})")
    return x


def _labels(y: np.ndarray, key: str, source: str) -> np.ndarray:
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise ValueError(f"dataset {source!r}: {key} must be a 1-D array of integer class labels "
                         f"(got dtype {y.dtype}, shape {y.shape})")
    return y.astype(np.int64)


def _check_classes(checked: dict[str, np.ndarray], source: str) -> None:
    """Classes are 0 .. max(y_train); a test or validation label beyond that has no output."""
    train = checked["y_train"]
    if train.min() < 0:
        raise ValueError(f"dataset {source!r}: y_train holds negative label {int(train.min())}; labels are 0..C-1")
    classes = int(train.max()) + 1
    if len(np.unique(train)) < 2:
        raise ValueError(f"dataset {source!r}: y_train has {len(np.unique(train))} class(es); at least 2 are needed")
    for _, y_key in SPLITS[1:]:
        if y_key in checked and (checked[y_key].min() < 0 or checked[y_key].max() >= classes):
            bad = checked[y_key][(checked[y_key] < 0) | (checked[y_key] >= classes)][0]
            raise ValueError(f"dataset {source!r}: {y_key} holds label {int(bad)}, out of range 0..{classes - 1} "
                             "(the classes of y_train)")
