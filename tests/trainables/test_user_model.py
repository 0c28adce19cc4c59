"""Bring your own model: factory specs by file and module path, --model-args, --weights,
the source hash, and the picklable reference a fresh worker process rebuilds."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from hardware.profiler import profile_model
from trainables.user_model import (build_from_reference, build_user_model, load_factory, load_weights,
                                   model_source_hash, parse_model_args, resolve_model)

HELPER = Path(__file__).with_name("user_factories.py")
REPO = Path(__file__).resolve().parents[2]
SHAPES = dict(in_channels=1, num_classes=3, image_shape=(1, 6, 6))


@pytest.mark.parametrize("spec", [f"{HELPER}:tiny_convnet", "tests.trainables.user_factories:tiny_convnet",
                                  f"{HELPER.relative_to(REPO)}:tiny_convnet"])
def test_factory_by_file_and_module_path(spec, monkeypatch):
    monkeypatch.chdir(REPO)
    model, reference = resolve_model(spec, {"width": 3}, **SHAPES)
    assert isinstance(model, nn.Sequential) and model[0].out_channels == 12  # the factory got width=3 only
    assert [s.name for s in profile_model(model, (1, 6, 6))] == ["0", "5"]
    assert pickle.loads(pickle.dumps(reference)) == reference
    if "/" in spec:  # a file: made absolute, so a worker in another folder finds it
        assert Path(reference["spec"].rsplit(":", 1)[0]).is_absolute()


def test_a_file_is_imported_once_per_process():
    """Its classes and module state stay the same objects however often a worker builds."""
    assert load_factory(f"{HELPER}:tiny_convnet") is load_factory(f"{HELPER}:tiny_convnet")


def test_zoo_model_gets_dataset_shapes():
    model, reference = resolve_model("mlp", None, in_channels=1, num_classes=4, image_shape=(1, 3, 3))
    assert model.fc1.in_features == 9 and model.fc3.out_features == 4
    assert reference == {"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 4, "image_shape": [1, 3, 3]}
    with pytest.raises(ValueError, match=r"'mlp' is a zoo model: it takes no --model-args"):
        resolve_model("mlp", {"width": 2}, in_channels=1, num_classes=4, image_shape=(1, 3, 3))


def test_a_fresh_worker_process_rebuilds_the_user_model(tmp_path):
    """What a Ray worker does: unpickle the reference, import the file by path, build."""
    _, reference = resolve_model(f"{HELPER}:tiny_convnet", {"width": 1, "classes": 5}, **SHAPES)
    (tmp_path / "reference.pkl").write_bytes(pickle.dumps(reference))
    code = ("import pickle, sys, torch\nfrom trainables.user_model import build_from_reference\n"
            f"model = build_from_reference(pickle.load(open({str(tmp_path / 'reference.pkl')!r}, 'rb')))\n"
            "print(tuple(model(torch.zeros(2, 1, 6, 6)).shape))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 5)"


@pytest.mark.parametrize("spec, message", [
    ("missing/file.py:tiny_convnet", r"file 'missing/file.py' does not exist"),
    (f"{HELPER}:absent", r"has no function 'absent'; its callables: \[.*'tiny_convnet'"),
    ("tests.trainables.user_factories:absent", r"has no function 'absent'"),
    ("no_such_package.models:net", r"cannot import module 'no_such_package.models'"),
    (f"{HELPER}:failing_factory", r"failing_factory\(\*\*\{\}\) raised RuntimeError: out of widgets"),
    (f"{HELPER}:not_a_module", r"returned a dict, not a torch.nn.Module"),
    (f"{HELPER}:no_layers", r"Sequential has no Conv2d or Linear layer"),
    (f"{HELPER}:NOT_CALLABLE", r"'NOT_CALLABLE' is a int, not a callable"),
    ("file.py:", r"expected 'path/to/file.py:function'"),
])
def test_bad_model_specs_are_named(spec, message, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match=message):
        build_user_model(spec)


@pytest.mark.parametrize("text, message", [("{width: 2}", r"--model-args '\{width: 2\}' is not valid JSON"),
                                           ("[2]", r"must be a JSON object")])
def test_bad_model_args_json(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_args(text)
    assert parse_model_args('{"width": 2}') == {"width": 2} and parse_model_args(None) == {}


def test_weights_round_trip_plain_and_wrapped(tmp_path):
    torch.manual_seed(0)
    trained = build_user_model(f"{HELPER}:tiny_convnet")
    torch.save(trained.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        fresh = load_weights(build_user_model(f"{HELPER}:tiny_convnet"), tmp_path / name)
        for key, value in trained.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key


def test_weights_mismatches_are_named(tmp_path):
    model = build_user_model(f"{HELPER}:tiny_convnet")
    state = model.state_dict()
    torch.save({**state, "5.weight": torch.zeros(3, 7)}, tmp_path / "shape.pt")
    torch.save({k: v for k, v in state.items() if k != "1.running_mean"} | {"extra.bias": torch.zeros(1)},
               tmp_path / "keys.pt")
    torch.save({"model": model}, tmp_path / "pickled_module.pt")
    cases = [("shape.pt", r"parameter '5.weight' has shape \(3, 7\) in the file but \(3, 8\) in the model"),
             ("keys.pt", r"missing keys \['1.running_mean'\], unexpected keys \['extra.bias'\]"),
             ("pickled_module.pt", r"is not a weights-only torch checkpoint"),
             ("absent.pt", r"absent.pt' does not exist")]
    for name, message in cases:
        with pytest.raises(ValueError, match=message):
            load_weights(model, tmp_path / name)


def test_source_hash_follows_the_file_and_the_arguments(tmp_path):
    source = HELPER.read_text()
    copy = tmp_path / "copy.py"
    copy.write_text(source)
    reference = {"kind": "user", "spec": f"{copy}:tiny_convnet", "model_args": {"width": 2}}
    digest = model_source_hash(reference)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert model_source_hash(dict(reference)) == digest
    assert model_source_hash({**reference, "model_args": {"width": 3}}) != digest
    edited = tmp_path / "edited.py"
    edited.write_text(source + "\n# edited\n")
    assert model_source_hash({**reference, "spec": f"{edited}:tiny_convnet"}) != digest
    zoo = {"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 3, "image_shape": [1, 6, 6]}
    assert model_source_hash(zoo) != model_source_hash({**zoo, "name": "lenet5"})
    with pytest.raises(ValueError, match=r"kind must be one of \['zoo', 'user'\]"):
        build_from_reference({"kind": "hub"})
    json.dumps(reference)  # references are plain JSON too
