"""Datasets as whole numpy arrays, split into train / validation / test.

Every loader returns ``DataSplits``: images float32 (N, C, H, W) normalized per channel with
the training split's statistics, labels int64. Validation is a seeded random subset carved
out of the training set, so policy selection never sees the test split. Arrays are small
enough (Fashion-MNIST: 220 MB as float32) to live whole on the device (``to_tensors``),
which keeps training free of DataLoader overhead.

Sources: Fashion-MNIST from its original IDX files, scikit-learn's bundled digits (tiny, for
tests), CIFAR-10 from its original python pickles read with a restricted unpickler, and a
user's own arrays (an .npz file or a ``package.module:function``; see ``user_data``).

(Over the ~250-line guide by the three built-in readers; the next dataset should move them into
a module of their own.)
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import os
import pickle
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

DATASETS = ("fashion-mnist", "digits", "cifar10")
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SPLIT_SEED = 0  # the test split is the same for every run seed
SPLIT_SEED = 0  # the validation split every run and every pretraining holds out, whatever their seed
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class DataSplits:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    in_channels: int
    num_classes: int
    image_shape: tuple[int, int, int]
    carved: bool = True  # the validation split was carved from the training examples (no x_val of its own)


@dataclass
class TensorSplits:
    """The same fields as ``DataSplits`` with the arrays as torch tensors on one device."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    in_channels: int
    num_classes: int
    image_shape: tuple[int, int, int]
    carved: bool = True


# -- IDX (the MNIST family's file format) ---------------------------------------------------
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (told apart by the gzip magic bytes)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err}); download the file again") from err
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{source}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; "
                         f"expected 0000 then a type code in {[hex(c) for c in _IDX_DTYPES]} and the rank)")
    dtype, rank = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(raw)} bytes, rank {rank} needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{source}: IDX shape {shape} needs {expected} bytes but the file has {len(raw)} "
                         "(truncated or corrupt; download it again)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _candidate_dirs(data_dir, subfolder: str, fallback: Path | None) -> list[Path]:
    """An explicit data_dir is the only place looked (no silent fallback to other copies)."""
    if data_dir is not None:
        return [Path(data_dir).expanduser(), Path(data_dir).expanduser() / subfolder]
    places = []
    if os.environ.get("EVO_DATA_DIR"):
        root = Path(os.environ["EVO_DATA_DIR"]).expanduser()
        places += [root / subfolder, root]
    return places + ([fallback] if fallback else [])


def _missing(dataset: str, places: list[Path], what: str, fix: str) -> ValueError:
    looked = "\n  ".join(str(p) for p in places) or "(nowhere: no --data-dir and no $EVO_DATA_DIR)"
    return ValueError(f"dataset {dataset!r} not found: no folder holding {what}; looked in:\n  {looked}\n{fix}")


def _load_fashion_mnist(data_dir) -> tuple[np.ndarray, ...]:
    places = _candidate_dirs(data_dir, "fashion-mnist", SYSTEM_FASHION_MNIST_DIR)
    for folder in places:
        found = {key: _find_idx(folder, stem) for key, stem in FASHION_MNIST_FILES.items()}
        if all(found.values()):
            arrays = {key: read_idx(path) for key, path in found.items()}
            for split in ("train", "test"):
                images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
                if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                    raise ValueError(f"{found[f'{split}_x']}: images {images.shape} do not match labels "
                                     f"{labels.shape} in {found[f'{split}_y']}")
            return (arrays["train_x"][:, None], arrays["train_y"], arrays["test_x"][:, None], arrays["test_y"])
    raise _missing("fashion-mnist", places, "the four IDX files (" + ", ".join(FASHION_MNIST_FILES.values()) +
                   "[.gz])", "install the Debian package dataset-fashion-mnist, or pass --data-dir "
                   "(a folder holding the files or a fashion-mnist/ subfolder), or set EVO_DATA_DIR")


# -- CIFAR-10 (python pickles) -----------------------------------------------------------------
def _numpy_core(submodule: str):
    try:  # numpy >= 2 renamed numpy.core; its shim warns on import
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists and numpy arrays only: a pickle can run any callable it names,
    so everything outside the pieces numpy uses to rebuild an array is refused."""

    _ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray")._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray")._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core("numeric")._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core("numeric")._frombuffer,
        ("_codecs", "encode"): lambda: codecs.encode,  # protocol-2 bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return self._ALLOWED[(module, name)]()


def load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = RestrictedUnpickler(handle, encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid CIFAR-10 batch ({err})") from err
    if len(images) != len(labels):
        raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _load_cifar10(data_dir) -> tuple[np.ndarray, ...]:
    places = _candidate_dirs(data_dir, CIFAR_FOLDER, None)
    names = CIFAR_TRAIN_BATCHES + ("test_batch",)
    for folder in places:
        if all((folder / name).is_file() for name in names):
            train = [load_cifar_batch(folder / name) for name in CIFAR_TRAIN_BATCHES]
            test_x, test_y = load_cifar_batch(folder / "test_batch")
            return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y)
    raise _missing("cifar10", places, "data_batch_1..5 and test_batch",
                   "download the CIFAR-10 python version (cifar-10-python.tar.gz from "
                   "https://www.cs.toronto.edu/~kriz/cifar.html), unpack it and pass --data-dir")


def _load_digits() -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ValueError("dataset 'digits' needs scikit-learn: pip install 'evo[digits]'") from err
    digits = load_digits()
    images, labels = digits.images.astype(np.float32)[:, None], digits.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_TEST_SPLIT_SEED).permutation(len(labels))
    n_test = int(round(DIGITS_TEST_FRACTION * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


# -- splitting and normalization ------------------------------------------------------------
_LOADERS = {
    "fashion-mnist": _load_fashion_mnist,
    "digits": lambda data_dir: _load_digits(),
    "cifar10": _load_cifar10,
}


def is_user_dataset(name: str) -> bool:
    """A user's dataset: an .npz file or a ``package.module:function`` returning the arrays."""
    return name.endswith(".npz") or ":" in name


def load_dataset(name: str, *, data_dir=None, val_fraction: float = 0.1, seed: int = 0,
                 limit_train: int | None = None) -> DataSplits:
    """Load a dataset and carve a seeded validation subset out of its training set.

    ``name`` is a built-in dataset or a user's (``is_user_dataset``; ``data_dir`` is not used
    for those, and their own x_val / y_val, when given, replace the carved subset).
    The validation subset depends only on ``seed`` and ``val_fraction``; ``limit_train``
    then keeps the first ``limit_train`` of the remaining (shuffled) training images."""
    if not is_user_dataset(name) and name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {list(DATASETS)}, a file.npz or "
                         "package.module:function")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} must be between 0 and 1 (exclusive)")
    if limit_train is not None and (not isinstance(limit_train, int) or limit_train < 1):
        raise ValueError(f"limit_train={limit_train!r} must be a positive integer or None")
    validation = None
    if is_user_dataset(name):
        from .user_data import load_user_arrays

        arrays = load_user_arrays(name)
        train_x, train_y, test_x, test_y = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        validation = (arrays["x_val"], arrays["y_val"]) if "x_val" in arrays else None
    else:
        train_x, train_y, test_x, test_y = _LOADERS[name](data_dir)
    return split_and_normalize(name, train_x, train_y, test_x, test_y, validation=validation,
                               val_fraction=val_fraction, seed=seed, limit_train=limit_train)


def split_and_normalize(name: str, train_x, train_y, test_x, test_y, *, validation=None, val_fraction: float,
                        seed: int, limit_train: int | None) -> DataSplits:
    """Seeded split (unless ``validation`` = (x, y) is given) and per-channel standardization
    with the training split's statistics."""
    order, n_val = _carve(len(train_y), val_fraction, seed)
    if validation is None:
        val_idx, train_idx = order[:n_val], order[n_val:limit_train + n_val if limit_train else None]
        val_x, val_y = train_x[val_idx], train_y[val_idx]
    else:
        train_idx = order[:limit_train]
        val_x, val_y = validation
    mean, std = _channel_stats(train_x[train_idx])

    def normalize(images: np.ndarray) -> np.ndarray:
        return ((images.astype(np.float32) - mean) / std).astype(np.float32, copy=False)

    return DataSplits(
        name=name,
        train_x=normalize(train_x[train_idx]), train_y=train_y[train_idx].astype(np.int64),
        val_x=normalize(val_x), val_y=val_y.astype(np.int64),
        test_x=normalize(test_x), test_y=test_y.astype(np.int64),
        in_channels=int(train_x.shape[1]), num_classes=int(max(train_y.max(), test_y.max(), val_y.max()) + 1),
        image_shape=tuple(int(d) for d in train_x.shape[1:]), carved=validation is None,
    )


def _carve(total: int, val_fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """The seeded order of ``total`` training examples and how many of its first ones are held
    out for validation."""
    return np.random.default_rng(seed).permutation(total), max(1, int(round(val_fraction * total)))


def trained_on_validation(total: int, pretrained: tuple[int, float], validated: tuple[int, float]) -> int:
    """How many of the validation examples a run carves with ``validated`` = (seed, val_fraction)
    from ``total`` training examples a model pretrained with ``pretrained`` = (seed, val_fraction)
    trained on (it held out only its own carved split)."""
    order, n_val = _carve(total, validated[1], validated[0])
    held, n_held = _carve(total, pretrained[1], pretrained[0])
    return int(np.setdiff1d(order[:n_val], held[:n_held], assume_unique=True).size)


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std, shaped (1, C, 1, 1) to broadcast over N, H, W (for N x D
    feature vectors: per feature, shaped (1, D))."""
    axes = (0, *range(2, images.ndim))
    mean = images.mean(axis=axes, keepdims=True, dtype=np.float64)  # no float64 copy of the images
    std = images.std(axis=axes, keepdims=True, dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def to_tensors(splits: DataSplits, device: str | torch.device = "cpu") -> TensorSplits:
    """Move every array to ``device`` once (on a GPU the whole dataset lives in GPU memory)."""
    values = {}
    for field in fields(DataSplits):
        value = getattr(splits, field.name)
        if isinstance(value, np.ndarray):
            # Arrays from Ray's object store are read-only views; torch wants writable memory.
            value = torch.from_numpy(value if value.flags.writeable else value.copy()).to(device)
        values[field.name] = value
    return TensorSplits(**values)


# Shapes known without reading the files (for `evo profile`, which needs no data).
DATASET_INFO = {
    "fashion-mnist": {"in_channels": 1, "num_classes": 10, "image_shape": (1, 28, 28)},
    "digits": {"in_channels": 1, "num_classes": 10, "image_shape": (1, 8, 8)},
    "cifar10": {"in_channels": 3, "num_classes": 10, "image_shape": (3, 32, 32)},
}


def dataset_info(name: str) -> dict:
    """in_channels, num_classes and image_shape; a user's dataset is read (and checked) for them."""
    if is_user_dataset(name):
        from .user_data import user_dataset_info

        return user_dataset_info(name)
    if name not in DATASET_INFO:
        raise ValueError(f"dataset {name!r} is unknown; valid choices: {list(DATASETS)}")
    return dict(DATASET_INFO[name])
