import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables import data
from trainables.data import DATASETS, load_cifar_batch, load_dataset, parse_idx, read_idx, to_tensors

FASHION_DIR = data.SYSTEM_FASHION_MNIST_DIR


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fake_fashion(folder, n_train=200, n_test=50, compress=True):
    """Image i has pixels (0, 0..2) = (i, 0, 255), so it can be traced after normalization."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, :3] = np.stack([np.arange(n), np.zeros(n), np.full(n, 255)], axis=1)
        labels = (np.arange(n) % 10).astype(np.uint8)
        arrays[split] = (images, labels)
        for kind, array, rank in (("images", images, 3), ("labels", labels, 1)):
            name = f"{split}-{kind}-idx{rank}-ubyte"
            payload = idx_bytes(array)
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return arrays


def test_read_idx_gz_and_raw_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(images))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), images)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(ints, type_code=0x0C)), ints)


def test_truncated_idx_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_wrong_magic_names_file(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(b"\x08\x03\x00\x00" + bytes(20))
    with pytest.raises(ValueError, match="labels.idx.*not an IDX file"):
        read_idx(path)


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))[:-30])
    with pytest.raises(ValueError, match="broken.gz.*gzip"):
        read_idx(path)


def traced_ids(images):
    """Undo the (affine, per-channel) normalization with the two reference pixels."""
    low, high = images[:, 0, 0, 1], images[:, 0, 0, 2]
    return np.rint((images[:, 0, 0, 0] - low) / (high - low) * 255).astype(int)


def image_ids(splits):
    return traced_ids(splits.train_x), traced_ids(splits.val_x)


@pytest.mark.parametrize("subfolder, compress", [("", True), ("fashion-mnist", False)])
def test_fake_fashion_mnist_splits(tmp_path, subfolder, compress):
    arrays = write_fake_fashion(tmp_path / subfolder if subfolder else tmp_path, compress=compress)
    splits = load_dataset("fashion-mnist", data_dir=tmp_path, val_fraction=0.25, seed=3)
    assert (splits.train_x.shape, splits.val_x.shape, splits.test_x.shape) == ((150, 1, 28, 28), (50, 1, 28, 28),
                                                                             (50, 1, 28, 28))
    assert splits.train_x.dtype == np.float32 and splits.train_y.dtype == np.int64
    assert (splits.in_channels, splits.num_classes, splits.image_shape) == (1, 10, (1, 28, 28))
    np.testing.assert_allclose(splits.train_x.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(splits.train_x.std(), 1.0, atol=1e-4)
    # Validation and training images are disjoint and together are the whole training file.
    train_ids, val_ids = image_ids(splits)
    assert not set(train_ids) & set(val_ids)
    assert sorted(np.concatenate([train_ids, val_ids])) == list(range(200))
    np.testing.assert_array_equal(splits.val_y, arrays["train"][1][val_ids])
    # The test split keeps its order and labels.
    np.testing.assert_array_equal(traced_ids(splits.test_x), np.arange(50))
    np.testing.assert_array_equal(splits.test_y, arrays["t10k"][1])


def test_validation_split_fixed_by_seed_and_independent_of_limit(tmp_path):
    write_fake_fashion(tmp_path)
    first = load_dataset("fashion-mnist", data_dir=tmp_path, seed=5)
    same = load_dataset("fashion-mnist", data_dir=tmp_path, seed=5)
    limited = load_dataset("fashion-mnist", data_dir=tmp_path, seed=5, limit_train=30)
    other = load_dataset("fashion-mnist", data_dir=tmp_path, seed=6)
    np.testing.assert_array_equal(first.val_x, same.val_x)
    assert len(limited.train_y) == 30 and len(first.val_y) == 20
    val_ids = image_ids(first)[1]
    np.testing.assert_array_equal(image_ids(limited)[1], val_ids)
    assert set(image_ids(limited)[0]) < set(image_ids(first)[0])
    assert set(image_ids(other)[1]) != set(val_ids)
    np.testing.assert_array_equal(first.test_y, other.test_y)


@pytest.mark.parametrize("pretrained, validated", [
    ((0, 0.1), (0, 0.1)), ((0, 0.25), (0, 0.1)), ((0, 0.1), (0, 0.25)), ((5, 0.1), (0, 0.1)), ((5, 0.3), (6, 0.1))])
def test_trained_on_validation_counts_the_images_a_pretraining_saw(tmp_path, pretrained, validated):
    """``trained_on_validation`` against the traced images of the two splits load_dataset carves:
    how many of one split's validation images are training images of the other."""
    from trainables.data import trained_on_validation

    write_fake_fashion(tmp_path)
    base = load_dataset("fashion-mnist", data_dir=tmp_path, seed=pretrained[0], val_fraction=pretrained[1])
    run = load_dataset("fashion-mnist", data_dir=tmp_path, seed=validated[0], val_fraction=validated[1])
    seen = len(set(image_ids(run)[1]) & set(image_ids(base)[0]))
    assert trained_on_validation(200, pretrained, validated) == seen
    if pretrained[0] == validated[0]:  # one order: nested splits, a smaller one held out leaks the difference
        assert seen == max(0, round(200 * validated[1]) - round(200 * pretrained[1]))
    else:
        assert seen > 0


def test_mismatched_images_and_labels(tmp_path):
    write_fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7, dtype=np.uint8))))
    with pytest.raises(ValueError, match="t10k-images.*do not match labels"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_fake_fashion(tmp_path / "fashion-mnist", n_train=40, n_test=10)
    monkeypatch.setenv("EVO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "no-such-system-dir")
    assert len(load_dataset("fashion-mnist").test_y) == 10


def test_missing_data_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    with pytest.raises(ValueError) as error:
        load_dataset("fashion-mnist")
    message = str(error.value)
    for place in (tmp_path / "env" / "fashion-mnist", tmp_path / "env", tmp_path / "system"):
        assert str(place) in message
    assert "dataset-fashion-mnist" in message and "--data-dir" in message
    with pytest.raises(ValueError, match="nowhere.*fashion-mnist") as error:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "fashion-mnist") in str(error.value)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="imagenet.*fashion-mnist.*digits.*cifar10"):
        load_dataset("imagenet")
    assert DATASETS == ("fashion-mnist", "digits", "cifar10")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    splits = load_dataset("fashion-mnist")
    assert splits.train_x.shape == (54000, 1, 28, 28) and splits.val_x.shape == (6000, 1, 28, 28)
    assert splits.test_x.shape == (10000, 1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    np.testing.assert_array_equal(np.bincount(np.concatenate([splits.train_y, splits.val_y])), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(splits.test_y), [1000] * 10)


def test_digits_splits():
    first, other = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert len(first.train_y) + len(first.val_y) + len(first.test_y) == 1797
    assert len(first.test_y) == 359 and len(first.val_y) == 144
    assert first.image_shape == (1, 8, 8) and first.num_classes == 10
    np.testing.assert_array_equal(first.test_y, other.test_y)  # the test split does not move with the seed
    assert not np.array_equal(first.val_y, other.val_y)


def write_fake_cifar(folder, per_batch=4, protocol=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in data.CIFAR_TRAIN_BATCHES + ("test_batch",):
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_loader_on_fake_batches(tmp_path, protocol):
    write_fake_cifar(tmp_path / data.CIFAR_FOLDER, protocol=protocol)
    images, labels = load_cifar_batch(tmp_path / data.CIFAR_FOLDER / "test_batch")
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    splits = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.25)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (15, 5, 4)
    assert splits.in_channels == 3 and splits.image_shape == (3, 32, 32)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}))
    with pytest.raises(ValueError, match="data_batch_1.*refusing to load (posix|os).system"):
        load_cifar_batch(path)
    assert not marker.exists()


def test_missing_cifar_says_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="(?s)cifar-10-batches-py.*--data-dir"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_to_tensors_keeps_fields():
    splits = load_dataset("digits", seed=0, limit_train=100)
    tensors = to_tensors(splits, "cpu")
    assert tensors.train_x.dtype == torch.float32 and tensors.test_y.dtype == torch.int64
    assert tensors.train_x.shape == (100, 1, 8, 8) and tensors.image_shape == splits.image_shape
    np.testing.assert_array_equal(tensors.val_x.numpy(), splits.val_x)


@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_dataset_info_matches_the_loaded_data(name):
    from trainables.data import dataset_info

    if name == "fashion-mnist" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    splits = load_dataset(name)
    info = dataset_info(name)
    assert info == {"in_channels": splits.in_channels, "num_classes": splits.num_classes,
                    "image_shape": tuple(splits.image_shape)}
    with pytest.raises(ValueError, match="valid choices"):
        dataset_info("imagenet")


# -- a user's own data: .npz files and package.module:function loaders ------------------------
def user_arrays(kind: str, with_val: bool, n_train=80, n_test=30) -> dict:
    """uint8 N x H x W images, float32 N x C x H x W images or float32 N x D vectors; 4 classes."""
    rng = np.random.default_rng(1)
    make = {"uint8": lambda n: rng.integers(0, 256, (n, 5, 7), dtype=np.uint8),
            "float32": lambda n: rng.normal(3.0, 2.0, (n, 2, 5, 7)).astype(np.float32),
            "vectors": lambda n: rng.normal(-1.0, 4.0, (n, 9)).astype(np.float32)}[kind]
    arrays = {"x_train": make(n_train), "y_train": (np.arange(n_train) % 4).astype(np.int32),
              "x_test": make(n_test), "y_test": (np.arange(n_test) % 4).astype(np.uint8)}
    if with_val:
        arrays |= {"x_val": make(12), "y_val": np.arange(12) % 4}
    return arrays


@pytest.mark.parametrize("kind", ["uint8", "float32", "vectors"])
@pytest.mark.parametrize("with_val", [False, True])
def test_npz_round_trip(tmp_path, kind, with_val):
    from trainables.data import dataset_info

    arrays = user_arrays(kind, with_val)
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    splits = load_dataset(str(path), val_fraction=0.25, seed=3)
    assert isinstance(splits, data.DataSplits) and splits.name == str(path)
    sample_shape = {"uint8": (1, 5, 7), "float32": (2, 5, 7), "vectors": (9,)}[kind]
    assert splits.image_shape == sample_shape and splits.in_channels == sample_shape[0] and splits.num_classes == 4
    n_val = 12 if with_val else 20
    assert (len(splits.train_x), len(splits.val_x), len(splits.test_x)) == (80 if with_val else 60, n_val, 30)
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"{split}_x"), getattr(splits, f"{split}_y")
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == sample_shape
    axes = (0, 2, 3) if len(sample_shape) == 3 else (0,)
    np.testing.assert_allclose(splits.train_x.mean(axis=axes), 0, atol=1e-4)  # standardized on train
    np.testing.assert_allclose(splits.train_x.std(axis=axes), 1, atol=1e-3)
    if with_val:  # all of x_train trains, so the test split is standardized with its statistics
        scale = 255.0 if kind == "uint8" else 1.0
        train, test = (arrays[k].astype(np.float64) / scale for k in ("x_train", "x_test"))
        if kind == "uint8":
            train, test = train[:, None], test[:, None]
        mean, std = train.mean(axis=axes, keepdims=True), train.std(axis=axes, keepdims=True)
        np.testing.assert_allclose(splits.test_x, (test - mean) / std, atol=1e-4)
    if with_val:
        np.testing.assert_array_equal(splits.val_y, arrays["y_val"])
    else:  # carved from training with the seed, as for the built-in datasets
        again = load_dataset(str(path), val_fraction=0.25, seed=3)
        np.testing.assert_array_equal(again.val_x, splits.val_x)
    assert dataset_info(str(path)) == {"in_channels": splits.in_channels, "num_classes": 4,
                                       "image_shape": sample_shape}


def test_dataset_from_a_loader_function():
    splits = load_dataset("tests.trainables.user_factories:tiny_arrays", seed=0)
    assert splits.image_shape == (1, 6, 6) and splits.num_classes == 3 and len(splits.test_y) == 20
    assert len(splits.train_y) + len(splits.val_y) == 60


def broken(change):
    arrays = user_arrays("float32", with_val=True)
    change(arrays)
    return arrays


@pytest.mark.parametrize("arrays, message", [
    (broken(lambda a: a.pop("y_test")), r"missing array\(s\) \['y_test'\]"),
    (broken(lambda a: a.pop("y_val")), r"give both x_val and y_val or neither \(it has only x_val\)"),
    (broken(lambda a: a.update(y_train=a["y_train"][:-1])), r"x_train has 80 samples but y_train has 79 labels"),
    (broken(lambda a: a.update(y_test=a["y_test"].astype(np.float32))), r"y_test must be a 1-D array of integer"),
    (broken(lambda a: a["x_val"].__setitem__((0, 0, 0, 0), np.nan)), r"x_val holds NaN or infinite values"),
    (broken(lambda a: a.update(y_train=np.zeros(80, dtype=np.int64))), r"y_train has 1 class\(es\)"),
    (broken(lambda a: a["y_test"].__setitem__(3, 7)), r"y_test holds label 7, out of range 0..3"),
    (broken(lambda a: a["y_train"].__setitem__(0, -1)), r"y_train holds negative label -1"),
    (broken(lambda a: a.update(x_test=a["x_test"][:, :1])), r"x_test samples have shape \(1, 5, 7\)"),
    (broken(lambda a: a.update(x_train=a["x_train"].astype(np.int16))), r"x_train has dtype int16"),
])
def test_bad_user_arrays_name_the_array(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(str(path))


@pytest.mark.parametrize("name, message", [
    ("nowhere/data.npz", r"file 'nowhere/data.npz' does not exist"),
    ("tests.trainables.user_factories:absent", r"has no function 'absent'"),
    ("tests.trainables.user_factories:not_a_module", r"missing array\(s\) \['x_train'"),  # a dict, wrong keys
    ("tests.trainables.user_factories:no_layers", r"no_layers\(\) returned a Sequential, not a dict of arrays"),
    ("no_such_pkg.data:arrays", r"cannot import module 'no_such_pkg.data'"),
])
def test_bad_user_dataset_specs(name, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(name)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, **user_arrays("float32", False) | {"x_train": np.array([object()] * 80)})
    with pytest.raises(ValueError, match="cannot read it without pickle"):
        load_dataset(str(path))


def test_dataset_source_hash_follows_the_data(tmp_path):
    from trainables.user_data import dataset_source_hash

    arrays = user_arrays("uint8", False)
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "same.npz", **arrays)
    arrays["x_test"][0, 0, 0] ^= 1
    np.savez(tmp_path / "changed.npz", **arrays)
    digest = dataset_source_hash(str(tmp_path / "a.npz"))
    assert len(digest) == 16 and dataset_source_hash(str(tmp_path / "same.npz")) == digest
    assert dataset_source_hash(str(tmp_path / "changed.npz")) != digest
    loader = dataset_source_hash("tests.trainables.user_factories:tiny_arrays")
    assert loader != dataset_source_hash("tests.trainables.user_factories:not_a_module")
    with pytest.raises(ValueError, match="does not exist"):
        dataset_source_hash(str(tmp_path / "absent.npz"))
