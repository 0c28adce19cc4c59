"""Bad input to the command line exits 2 with a message naming the value, before Ray starts and
before anything is written: run-folder guards, non-finite numbers, unknown names, missing or bad
config files, a --name with a slash."""

from __future__ import annotations

import pytest
import yaml

from evo.cli import main


@pytest.fixture
def storage(tmp_path):
    return tmp_path / "runs"


def run_cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flags, needle", [
    (["--gpus-per-trial", "nan"], "gpus_per_trial=nan must be a finite number"),
    (["--cpus-per-trial", "inf"], "cpus_per_trial=inf must be a finite number"),
    (["--population", "3"], "population=3 must be an integer >= 4"),
    (["--name", "a/b"], "name='a/b' must be a plain folder name"),
    (["--model", "vgg19"], "unknown model 'vgg19'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--model", "nowhere.py:build"], "does not exist"),
    (["--dataset", "missing.npz"], "missing.npz"),
    (["--weights", "missing.pt"], "weights='missing.pt': no such file"),
    (["--model-args", "{bad json"], "is not valid JSON"),
    (["--config", "no-such.yaml"], "config file not found: no-such.yaml"),
    (["--budget", "bops=nan"], "bops=nan"),
    (["--rungs", "0"], "rungs=0 must be an integer in [1, 4]"),
    (["--rungs", "3", "--rung-factor", "10"], "under one step at fine_tune_steps=40"),
    (["--rungs", "2", "--rung-factor", "1"], "rung_factor=1 must be an integer in [2, 10]"),
    (["--pretrain-epochs", "0"], "pretrain_epochs=0 must be an integer >= 1"),
])
def test_bad_search_input_exits_2_and_writes_nothing(flags, needle, storage, capsys, monkeypatch, tmp_path):
    import ray

    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["search", "--preset", "smoke", "--storage", str(storage), *flags], capsys)
    assert code == 2 and needle in err, err
    assert not storage.exists() and not ray.is_initialized()


@pytest.mark.parametrize("command", [["search", "--preset", "smoke"], ["baseline", "random", "--preset", "smoke"],
                                     ["baseline", "admm", "--model", "lenet5", "--dataset", "fashion-mnist",
                                      "--budget", "size=1/100", "--seeds", "1"]])
def test_pretrain_epochs_beside_weights_is_refused_before_ray(command, tmp_path, storage, capsys):
    import ray

    weights = tmp_path / "base.pt"
    weights.write_bytes(b"not read: the flags conflict first")
    code, err = run_cli([*command, "--weights", str(weights), "--pretrain-epochs", "3", "--storage", str(storage)],
                        capsys)
    assert code == 2 and "pretrain_epochs=3 with weights=" in err and "give one of the two" in err, err
    assert not storage.exists() and not ray.is_initialized()


def test_pretrain_epochs_flag_reaches_the_config_of_search_and_the_baselines():
    from evo.cli import build_parser
    from evo.cli.args import config_from_args
    from evo.cli.baseline import baseline_config

    parser = build_parser()
    assert config_from_args(parser.parse_args(["search", "--pretrain-epochs", "3"])).pretrain_epochs == 3
    assert config_from_args(parser.parse_args(["search"])).pretrain_epochs is None
    args = parser.parse_args(["baseline", "optuna", "--pretrain-epochs", "4"])
    assert baseline_config(args).pretrain_epochs == 4


def test_unknown_yaml_keys_name_them(tmp_path, storage, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"populaton": 8}))
    code, err = run_cli(["search", "--config", str(config), "--storage", str(storage)], capsys)
    assert code == 2 and "unknown settings ['populaton']" in err and not storage.exists()


@pytest.mark.parametrize("setting, needle", [
    ({"sensitivity_samples": -1}, "sensitivity_samples=-1 must be an integer >= 0"),
    ({"sensitivity_samples": 0.5}, "sensitivity_samples=0.5 must be an integer >= 0"),
    ({"distill_weight": float("nan")}, "distill_weight=nan"),
    ({"final_fill": "maybe"}, "final_fill='maybe' must be true or false"),
    ({"final_fill": True, "sensitivity_samples": 0}, "final_fill=True needs the per-layer sensitivity"),
    ({"surrogate": "often"}, "surrogate='often' must be true or false"),
    ({"final_uniform": 0}, "final_uniform=0 must be an integer >= 1"),
    ({"final_uniform": 1.5}, "final_uniform=1.5 must be an integer >= 1"),
])
def test_bad_yaml_settings_exit_2_and_write_nothing(setting, needle, tmp_path, storage, capsys):
    import ray

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(setting))
    code, err = run_cli(["search", "--preset", "smoke", "--config", str(config), "--storage", str(storage)], capsys)
    assert code == 2 and needle in err, err
    assert not storage.exists() and not ray.is_initialized()


@pytest.mark.parametrize("method", ["uniform", "random", "optuna"])
@pytest.mark.parametrize("setting", ["final_fill", "surrogate"])
def test_evo_only_settings_are_refused_by_the_baselines_before_ray(method, setting, tmp_path, storage, capsys):
    import ray

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({setting: True}))
    code, err = run_cli(["baseline", method, "--preset", "smoke", "--config", str(config), "--storage", str(storage)],
                        capsys)
    assert code == 2 and f"{setting}=True is a setting of evo search; the {method} baseline" in err, err
    assert not storage.exists() and not ray.is_initialized()


def test_run_folder_guards(tmp_path, storage, capsys):
    from evo.runs.config import resolve_config

    folder = storage / "smoke"
    folder.mkdir(parents=True)
    cfg = resolve_config("smoke", None, {"storage": str(storage)})
    (folder / "run.yaml").write_text(yaml.safe_dump({"config": cfg.to_dict()}))
    before = sorted(p.name for p in folder.iterdir())
    code, err = run_cli(["search", "--preset", "smoke", "--storage", str(storage)], capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err
    code, err = run_cli(["search", "--preset", "smoke", "--storage", str(storage), "--resume",
                         "--population", "12"], capsys)
    assert code == 2 and "the config differs" in err and "population: 8 -> 12" in err
    code, err = run_cli(["search", "--preset", "smoke", "--storage", str(storage), "--name", "other", "--resume"],
                        capsys)
    assert code == 2 and "no run to resume" in err
    assert sorted(p.name for p in folder.iterdir()) == before and not (storage / "other").exists()


def test_export_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, err = run_cli(["export", str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "is not a run folder" in err and not (tmp_path / "out").exists()


def test_a_run_older_than_a_setting_resumes_while_the_setting_keeps_its_default(tmp_path):
    from evo.runs.config import resolve_config
    from evo.runs.prepare import check_run_dir

    cfg = resolve_config("smoke", None, {"storage": str(tmp_path), "final_seeds": 2})  # both at their defaults
    older = {k: v for k, v in cfg.to_dict().items() if k not in ("final_seeds", "sensitivity_samples")}
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "run.yaml").write_text(yaml.safe_dump({"config": older}))
    assert check_run_dir(cfg, resume=True)["config"] == older
    with pytest.raises(ValueError, match=r"final_seeds: 2 -> 3"):
        check_run_dir(cfg.replace(final_seeds=3), resume=True)


def test_the_config_class_defaults_are_the_default_preset():
    """The Python API's SearchConfig() and the CLI's embedded default are one search."""
    from dataclasses import asdict

    from evo.runs.config import SearchConfig, load_preset

    defaults = asdict(SearchConfig())
    differing = {k: (defaults[k], v) for k, v in load_preset("default").items() if defaults[k] != v}
    assert differing == {}


def test_input_paths_are_stored_absolute_and_an_older_relative_run_still_resumes(tmp_path, monkeypatch):
    """run.yaml names the model file, the npz and the weights by absolute paths, so `evo export` and
    `--resume` find them from any directory; a run.yaml written with relative paths (older runs)
    compares equal when resumed from the directory it started in."""
    from evo.runs.config import resolve_config
    from evo.runs.prepare import check_run_dir

    (tmp_path / "net.py").write_text("def build():\n    pass\n")
    (tmp_path / "data.npz").write_bytes(b"")
    (tmp_path / "w.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    relative = {"model": "net.py:build", "dataset": "data.npz", "weights": "w.pt", "storage": str(tmp_path / "runs")}
    cfg = resolve_config("smoke", None, relative)
    assert (cfg.model, cfg.dataset, cfg.weights) == (f"{tmp_path}/net.py:build", f"{tmp_path}/data.npz",
                                                      f"{tmp_path}/w.pt")
    assert resolve_config("smoke", None, {"model": "pkg.nets:build"}).model == "pkg.nets:build"  # a module spec
    assert resolve_config("smoke", None, {}).dataset == "digits"  # a built-in name
    older = {**cfg.to_dict(), **{k: relative[k] for k in ("model", "dataset", "weights")}}
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "run.yaml").write_text(yaml.safe_dump({"config": older}))
    assert check_run_dir(cfg, resume=True)["config"] == older
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative names now point elsewhere: a changed config
    with pytest.raises(ValueError, match=r"the config differs .*dataset"):
        check_run_dir(cfg, resume=True)


def test_a_resumed_run_keeps_the_pretraining_epochs_it_started_with():
    """A run that left the base model's epochs to the default resumes with the epochs its run.yaml
    recorded, or, for a user's model in an older run.yaml without them, with the 10 epochs that were
    the default then; never with today's default, which would swap the base model under the run."""
    from types import SimpleNamespace

    from evo.runs.prepare import pinned_epochs

    def epochs(meta, *, kind="user", resume=True, **settings):
        cfg = SimpleNamespace(**{"pretrain_epochs": None, "weights": None, **settings})
        saved = meta if resume else None  # the run.yaml check_run_dir returns on resume
        return pinned_epochs(cfg, SimpleNamespace(model_ref={"kind": kind}), saved)

    recorded = {"method": "evo", "base_model": {"val_accuracy": 0.88, "epochs": 48}}
    older = {"method": "evo", "base_model": {"val_accuracy": 0.83}}
    assert epochs(recorded) == 48 and epochs(recorded, kind="zoo") == 48
    assert epochs(older) == 10 and epochs(older, kind="zoo") is None  # the zoo recipes did not change
    assert epochs(recorded, resume=False) is None  # a new run: the default
    assert epochs(recorded, pretrain_epochs=5) == 5  # asked for
    assert epochs(older, weights="w.pt") is None  # no pretraining at all


BENCHMARKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"


def test_every_config_the_study_script_names_exists_and_is_a_valid_search():
    """benchmarks/study_lenet.sh runs `evo search --config benchmarks/X.yaml` for its evo variants:
    each such file exists and resolves over the default preset to a valid SearchConfig that changes
    the settings the file names and nothing else (a renamed or mistyped key would fail here, not
    an hour into a study)."""
    import re
    from dataclasses import asdict

    from evo.runs.config import SearchConfig, read_yaml, resolve_config

    named = sorted(set(re.findall(r"--config (benchmarks/[\w.]+\.yaml)", (BENCHMARKS / "study_lenet.sh").read_text())))
    assert "benchmarks/val_fraction_0.2.yaml" in named and len(named) >= 4, named
    default = asdict(resolve_config())
    for relative in named:
        path = BENCHMARKS.parent / relative
        settings = read_yaml(path)
        cfg = resolve_config(None, str(path))
        assert isinstance(cfg, SearchConfig)
        changed = {k for k, v in asdict(cfg).items() if v != default[k]}
        assert changed == {k for k, v in settings.items() if v != default[k]} and changed, (relative, changed)


def held_out(cfg, splits, **kwargs):
    """``check_held_out`` on ``cfg.weights`` as the run reads them (its meta from ``read_weights``)."""
    from evo.runs.prepare import check_held_out
    from trainables.user_model import read_weights

    return check_held_out(cfg, read_weights(cfg.weights)[1], splits, **kwargs)


def test_weights_pretrained_on_the_runs_validation_images_are_refused_before_ray(tmp_path, storage, capsys):
    """An evo checkpoint that trained on images the run validates on (it held out a smaller split,
    or an older evo's split of another seed) is refused before Ray starts, naming how many; one that
    held out the run's split, or a plain state_dict, is taken."""
    from types import SimpleNamespace

    import ray
    import torch

    from trainables.data import load_dataset
    from trainables.pretrain import pretrain

    base = pretrain("mlp", "digits", epochs=1, seed=1, cache_dir=tmp_path / "cache", log=lambda _: None)
    wider = tmp_path / "val0.2.yaml"
    wider.write_text(yaml.safe_dump({"val_fraction": 0.2}))
    code, err = run_cli(["search", "--preset", "smoke", "--weights", str(base.path), "--config", str(wider),
                         "--storage", str(storage)], capsys)
    assert code == 2 and "evo pretrained that base model on 144 of the 288 validation images" in err, err
    assert "held out the split of seed 0 at val_fraction 0.1" in err, err
    assert "`evo pretrain --model mlp --dataset digits --val-fraction 0.2` (any --seed)" in err, err
    assert not storage.exists() and not ray.is_initialized()

    older = tmp_path / "older.pt"  # an older evo's seed-1 checkpoint: it held out seed 1's split
    payload = torch.load(base.path, weights_only=True)
    del payload["meta"]["split_seed"]
    torch.save(payload, older)
    code, err = run_cli(["search", "--preset", "smoke", "--weights", str(older), "--storage", str(storage)], capsys)
    assert code == 2 and "an older evo pretrained that base model on" in err, err
    assert "validation images this run validates on (it held out the split of seed 1" in err, err
    assert not storage.exists() and not ray.is_initialized()

    splits = load_dataset("digits", val_fraction=0.1, seed=0)
    plain = tmp_path / "plain.pt"
    torch.save(payload["state_dict"], plain)
    for weights in (base.path, plain):  # the run's own split held out; a state_dict with no word of its data
        held_out(SimpleNamespace(weights=str(weights), dataset="digits", val_fraction=0.1), splits)
    # a run that started with such weights (--resume, evo export) goes on, warned
    lines = []
    held_out(SimpleNamespace(weights=str(older), dataset="digits", val_fraction=0.1, model="mlp"), splits,
             resumed_log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("warning: --weights") and "this run started with it" in lines[0]


def test_the_refusals_pretrain_hint_remakes_the_runs_base_model():
    """The `evo pretrain` line the refusal suggests parses, with evo's own parser, to the run's model,
    model arguments, data, data folder and validation share, quoted where a path has spaces."""
    import shlex
    from types import SimpleNamespace

    from evo.cli import build_parser
    from evo.cli.args import model_args_of
    from evo.runs.prepare import pretrain_command

    cfg = SimpleNamespace(model="my models/net.py:build", model_args={"width": 2, "act": "relu"},
                          dataset="data/my set.npz", data_dir="/data/fashion mnist", val_fraction=0.2)
    words = shlex.split(pretrain_command(cfg))
    assert words[:2] == ["evo", "pretrain"], words
    args = build_parser().parse_args(words[1:])
    assert (args.model, args.dataset, args.data_dir, args.val_fraction) == \
        (cfg.model, cfg.dataset, cfg.data_dir, cfg.val_fraction), args
    assert model_args_of(args) == cfg.model_args, args.model_args
    plain = SimpleNamespace(model="lenet5", model_args=None, dataset="fashion-mnist", data_dir=None, val_fraction=0.1)
    assert pretrain_command(plain) == "evo pretrain --model lenet5 --dataset fashion-mnist --val-fraction 0.1"


def test_weights_guard_on_a_users_npz_follows_its_data_and_its_own_validation_split(tmp_path, monkeypatch):
    """On a user's npz the guard knows the data by its content (another path to the same file is the
    same data) and stands aside when the npz brings its own x_val (no split is carved)."""
    from types import SimpleNamespace

    import numpy as np

    from trainables.data import load_dataset
    from trainables.pretrain import pretrain

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (400, 1, 8, 8), dtype=np.uint8), "y_train": np.arange(400) % 10,
              "x_test": rng.integers(0, 256, (50, 1, 8, 8), dtype=np.uint8), "y_test": np.arange(50) % 10}
    np.savez(tmp_path / "data.npz", **arrays)
    np.savez(tmp_path / "with_val.npz", **arrays, x_val=arrays["x_test"], y_val=arrays["y_test"])
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    carved = pretrain("mlp", "data.npz", epochs=1, cache_dir=cache, log=lambda _: None)  # val_fraction 0.1
    own = pretrain("mlp", "with_val.npz", epochs=1, cache_dir=cache, log=lambda _: None)
    run = SimpleNamespace(weights=str(carved.path), dataset=str(tmp_path / "data.npz"), val_fraction=0.2, model="mlp")
    with pytest.raises(ValueError, match="evo pretrained that base model on 40 of the 80 validation images"):
        held_out(run, load_dataset(run.dataset, val_fraction=0.2, seed=0))
    held_out(SimpleNamespace(**{**vars(run), "val_fraction": 0.1}), load_dataset(run.dataset, seed=0))
    run = SimpleNamespace(weights=str(own.path), dataset=str(tmp_path / "with_val.npz"), val_fraction=0.2, model="mlp")
    held_out(run, load_dataset(run.dataset, val_fraction=0.2, seed=0))  # its own x_val: nothing carved


@pytest.mark.parametrize("value, needle", [("nan", "val_fraction=nan must be a finite number in (0, 0.5)"),
                                           ("0.6", "val_fraction=0.6 must be a finite number in (0, 0.5)"),
                                           ("0", "val_fraction=0.0 must be a finite number in (0, 0.5)")])
def test_pretrain_val_fraction_is_checked_before_training(value, needle, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, err = run_cli(["pretrain", "--model", "mlp", "--dataset", "digits", "--val-fraction", value,
                         "--cache-dir", str(cache)], capsys)
    assert code == 2 and needle in err, err
    assert not cache.exists()


def test_pretrain_val_fraction_holds_out_a_runs_split(tmp_path, capsys):
    """`evo pretrain --val-fraction 0.2 --seed 3` trains a base model a run at val_fraction 0.2 may take
    (--weights): it held out exactly the run's validation images."""
    from types import SimpleNamespace

    import torch

    from trainables.data import load_dataset

    cache = tmp_path / "cache"
    assert main(["pretrain", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--seed", "3",
                 "--val-fraction", "0.2", "--cache-dir", str(cache)]) == 0
    (path,) = cache.glob("mlp-digits-seed3-split0-epochs1-val0.2-*.pt")
    meta = torch.load(path, weights_only=True)["meta"]
    assert (meta["seed"], meta["split_seed"], meta["val_fraction"]) == (3, 0, 0.2)
    for fraction in (0.2, 0.1):  # the run's own split, and one nested in it
        held_out(SimpleNamespace(weights=str(path), dataset="digits", val_fraction=fraction),
                 load_dataset("digits", val_fraction=fraction, seed=0))
    with pytest.raises(ValueError, match="on 143 of the 431 validation images"):
        held_out(SimpleNamespace(weights=str(path), dataset="digits", val_fraction=0.3, model="mlp"),
                 load_dataset("digits", val_fraction=0.3, seed=0))
