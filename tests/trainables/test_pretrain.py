import pytest
import torch

from trainables.data import load_dataset, to_tensors
from trainables.models import create_model
from trainables.pretrain import RECIPES, checkpoint_path, pretrain
from trainables.train import evaluate



def quiet(_line):
    pass


def test_pretrain_writes_then_reuses_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_CACHE_DIR", str(tmp_path))
    first = pretrain("mlp", "digits", epochs=4, seed=1, device="cpu", log=quiet)
    assert not first.cached and first.path == tmp_path / "mlp-digits-seed1-epochs4-val0.1.pt" and first.path.is_file()
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
    # The weights reproduce the recorded accuracies on the same splits.
    splits = to_tensors(load_dataset("digits", seed=1), "cpu")
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=splits.image_shape)
    model.load_state_dict(payload["state_dict"])
    assert evaluate(model, splits.test_x, splits.test_y)["accuracy"] == pytest.approx(first.test_accuracy)
    assert evaluate(model, splits.val_x, splits.val_y)["accuracy"] == pytest.approx(first.val_accuracy)


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
    with pytest.raises(ValueError, match="mlp-digits-seed0-epochs2-val0.1.pt.*delete it"):
        pretrain("mlp", "digits", epochs=2, cache_dir=tmp_path, log=quiet)
