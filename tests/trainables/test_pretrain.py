from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from trainables.data import load_dataset, to_tensors
from trainables.models import create_model
from trainables.pretrain import RECIPES, Recipe, checkpoint_path, pretrain, recipe_key
from trainables.train import evaluate



def quiet(_line):
    pass


def test_pretrain_writes_then_reuses_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_CACHE_DIR", str(tmp_path))
    first = pretrain("mlp", "digits", epochs=4, seed=1, device="cpu", log=quiet)
    assert not first.cached and first.path == tmp_path / f"mlp-digits-seed1-split0-epochs4-val0.1-r{recipe_key(RECIPES['mlp'])}.pt" and first.path.is_file()
    assert (first.model_name, first.dataset_name, first.epochs, first.seed) == ("mlp", "digits", 4, 1)
    assert first.val_accuracy > 0.8 and first.test_accuracy > 0.8
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary file left behind

    lines = []
    second = pretrain("mlp", "digits", epochs=4, seed=1, device="cpu", log=lines.append)
    assert second.cached and second.path == first.path and "cached" in lines[0]
    assert second.state_dict.keys() == first.state_dict.keys()
    assert all(torch.equal(second.state_dict[k], first.state_dict[k]) for k in first.state_dict)
    assert (second.val_accuracy, second.test_accuracy) == (first.val_accuracy, first.test_accuracy)

    payload = torch.load(first.path, weights_only=True)
    assert payload["meta"]["epochs"] == 4 and payload["meta"]["model_name"] == "mlp"
    assert payload["meta"]["val_fraction"] == 0.1
    # The weights reproduce the recorded accuracies on the same splits: the validation split every
    # run holds out (seed 0's), whatever the pretraining seed.
    assert payload["meta"]["split_seed"] == 0
    splits = to_tensors(load_dataset("digits", seed=0), "cpu")
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=splits.image_shape)
    model.load_state_dict(payload["state_dict"])
    assert evaluate(model, splits.test_x, splits.test_y)["accuracy"] == pytest.approx(first.test_accuracy)
    assert evaluate(model, splits.val_x, splits.val_y)["accuracy"] == pytest.approx(first.val_accuracy)


def test_an_older_evos_checkpoint_of_another_seed_is_never_taken(tmp_path):
    """An older evo carved the validation split with the pretraining seed and named the file
    ``seed1-...``: that model trained on images runs validate on, so it is left alone and never
    taken; seed 0's name, whose split was the runs' split all along, is unchanged."""
    older = tmp_path / f"mlp-digits-seed1-epochs2-val0.1-r{recipe_key(RECIPES['mlp'])}.pt"
    older.write_bytes(b"an older evo's checkpoint")
    result = pretrain("mlp", "digits", epochs=2, seed=1, cache_dir=tmp_path, log=quiet)
    assert not result.cached and result.path.name == older.name.replace("seed1-", "seed1-split0-")
    assert older.read_bytes() == b"an older evo's checkpoint"
    assert checkpoint_path("mlp", "digits", seed=0, epochs=2, cache_dir=tmp_path).name == \
        f"mlp-digits-seed0-epochs2-val0.1-r{recipe_key(RECIPES['mlp'])}.pt"


def test_cache_key_separates_seed_and_epochs(tmp_path):
    paths = {checkpoint_path("mlp", "digits", seed=s, epochs=e, val_fraction=v, cache_dir=tmp_path)
             for s in (0, 1) for e in (1, 2) for v in (0.1, 0.2)}
    assert len(paths) == 8
    result = pretrain("mlp", "digits", seed=0, cache_dir=tmp_path, device="cpu", log=quiet)
    assert result.epochs == RECIPES["mlp"].epochs and not result.cached


@pytest.mark.parametrize("kwargs, message", [
    ({"model_name": "vgg", "dataset_name": "digits"}, "unknown model 'vgg'.*lenet5"),
    ({"model_name": "mlp", "dataset_name": "mnist"}, "unknown dataset 'mnist'.*fashion-mnist"),
    ({"model_name": "mlp", "dataset_name": "digits", "epochs": 0}, "epochs=0"),
    ({"model_name": "mlp", "dataset_name": "digits", "seed": -1}, "seed=-1"),
    ({"model_name": "mlp", "dataset_name": "digits", "val_fraction": 1.0}, "val_fraction=1.0"),
])
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, message):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message):
        pretrain(cache_dir=cache, log=quiet, **kwargs)
    assert not cache.exists()


def test_unreadable_checkpoint_names_the_file(tmp_path):
    path = checkpoint_path("mlp", "digits", seed=0, epochs=2, cache_dir=tmp_path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"mlp-digits-seed0-epochs2-val0\.1-r[0-9a-f]{8}\.pt.*delete it"):
        pretrain("mlp", "digits", epochs=2, cache_dir=tmp_path, log=quiet)


def test_cache_key_changes_with_every_recipe_field(tmp_path):
    """A checkpoint trained by another recipe (an older evo's 3-epoch base) must never be taken
    for this one: every field but epochs changes the hash; epochs change the file name."""
    base = RECIPES["mlp"]
    changed = {"batch_size": 7, "lr": 0.123, "momentum": 0.5, "weight_decay": 0.0, "augment": True,
               "optimizer": "nesterov" if base.optimizer != "nesterov" else "sgd",
               "warmup_fraction": 0.25, "label_smoothing": 0.05, "crop_padding": 1}
    assert set(changed) == {f.name for f in fields(Recipe)} - {"epochs"}
    paths = {checkpoint_path("mlp", "digits", seed=0, epochs=5, cache_dir=tmp_path, recipe=base)}
    for name, value in changed.items():
        assert getattr(base, name) != value
        other = replace(base, **{name: value})
        assert recipe_key(other) != recipe_key(base), name
        paths.add(checkpoint_path("mlp", "digits", seed=0, epochs=5, cache_dir=tmp_path, recipe=other))
    assert len(paths) == len(changed) + 1
    assert recipe_key(replace(base, epochs=base.epochs + 1)) == recipe_key(base)
    assert checkpoint_path("mlp", "digits", seed=0, epochs=5, cache_dir=tmp_path) == \
        checkpoint_path("mlp", "digits", seed=0, epochs=5, cache_dir=tmp_path, recipe=base)


def test_other_recipe_is_not_served_from_the_cache(tmp_path):
    first = pretrain("mlp", "digits", epochs=2, cache_dir=tmp_path, log=quiet)
    other = pretrain("mlp", "digits", epochs=2, cache_dir=tmp_path, log=quiet,
                     recipe=replace(RECIPES["mlp"], lr=RECIPES["mlp"].lr / 2))
    assert not other.cached and other.path != first.path and len(list(tmp_path.iterdir())) == 2
    assert pretrain("mlp", "digits", epochs=2, cache_dir=tmp_path, log=quiet).cached
    assert torch.load(other.path, weights_only=True)["meta"]["recipe"]["lr"] == RECIPES["mlp"].lr / 2
    assert not torch.equal(other.state_dict["fc1.weight"], first.state_dict["fc1.weight"])  # trained by it


def test_mlp_recipe_reaches_its_accuracy(tmp_path):
    """The default MLP recipe on digits (chance: 10%) measured 98.6-100% validation over seeds 0-2."""
    result = pretrain("mlp", "digits", seed=0, cache_dir=tmp_path, log=quiet)
    assert result.epochs == RECIPES["mlp"].epochs
    assert result.val_accuracy >= 0.97 and result.test_accuracy >= 0.97


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "adam"}, "optimizer='adam'.*'sgd', 'nesterov', 'adamw'"),
    ({"warmup_fraction": 1.0}, "warmup_fraction=1.0"),
    ({"label_smoothing": -0.1}, "label_smoothing=-0.1"),
    ({"crop_padding": -1}, "crop_padding=-1"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"lr": 0.0}, "lr=0.0"),
])
def test_bad_recipe_raises_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**{"epochs": 1, "batch_size": 8, "lr": 0.1, **kwargs})


def test_recipe_argument_must_be_a_recipe(tmp_path):
    with pytest.raises(ValueError, match="recipe=.*must be a Recipe"):
        pretrain("mlp", "digits", recipe={"lr": 0.1}, cache_dir=tmp_path, log=quiet)


def test_a_users_model_on_a_small_dataset_trains_at_least_the_minimum_steps():
    """The user recipe's 10 epochs are a floor: fewer than 4,000 minibatches of 128 take more
    epochs, up to 100 (values worked by hand from the split sizes)."""
    from trainables.pretrain import user_epochs

    assert user_epochs(54_000) == 10  # Fashion-MNIST's training split: 422 steps an epoch, 4,220 steps
    assert user_epochs(10_800) == 48  # the own-model example: 85 steps an epoch, 4,000 / 85 = 47.06
    assert user_epochs(450) == 100  # 4 steps an epoch: 1,000 epochs, capped
    assert user_epochs(6_400, replace(RECIPES["lenet5"], epochs=80)) == 80  # the recipe's own epochs when more


def test_a_users_model_pretrained_by_default_gets_the_epochs_of_its_data(tmp_path):
    """pretrain() without epochs on a user's model and a user's npz: the split's size sets the epochs
    (60 images, 54 after the validation carve: one step an epoch, so the 100-epoch cap), and the
    cached checkpoint of that length is found again."""
    import numpy as np

    from trainables.user_model import resolve_model

    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (60, 6, 6), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8), y_test=np.arange(20) % 3)
    spec = f"{Path(__file__).with_name('user_factories.py')}:tiny_convnet"
    _, reference = resolve_model(spec, None, in_channels=1, num_classes=3, image_shape=(1, 6, 6))
    lines = []
    result = pretrain(spec, str(npz), cache_dir=tmp_path / "cache", model_ref=reference, log=lines.append)
    assert result.epochs == 100 and not result.cached and "100 epochs" in lines[0]
    assert pretrain(spec, str(npz), cache_dir=tmp_path / "cache", model_ref=reference, log=quiet).cached
    assert pretrain(spec, str(npz), epochs=3, cache_dir=tmp_path / "cache", model_ref=reference, log=quiet).epochs == 3
