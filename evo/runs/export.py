"""`evo export`: a run's chosen policy as files a user can ship (trainables.export does the packing):

- ``model.evo.pt``: packed integer weights, sparse index, per-channel scales, float biases; its
  payload against the run's priced ``size_bits_honest``, and a reload check (identical
  outputs, or within float rounding where a BatchNorm was folded);
- ``model.onnx``: QuantizeLinear/DequantizeLinear for weights and activations, checked in
  onnxruntime against the fake-quantized PyTorch model on the test split;
- ``policy.yaml`` and ``report.md`` (the cost table and what the export measured).

The policy: by default the final policy with the best validation accuracy within the budget (the
one the final table compares); ``--policy N`` takes row N of pareto.parquet (0 = the final table's
first row); ``--policy FILE`` a policy file, fine-tuned here as a final trial would. A final
trial saved its fine-tuned model under ``models/``, which is what is exported; everything is
checked before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd

from evo.runs.folder import read_run
from evo.runs.summary import best_final

OUTPUTS = ("model.evo.pt", "model.onnx", "policy.yaml", "report.md")


def final_rows(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "pareto.parquet"
    return pd.read_parquet(path).reset_index(drop=True) if path.exists() else pd.DataFrame()


def choose_policy(run_dir: Path, policy: str | None, layer_names: list[str]):
    """(Policy, genome key or None, row or None) for ``--policy``; ValueError naming the choices."""
    from hardware.policy import Policy

    rows = final_rows(run_dir)
    if policy is not None and not str(policy).lstrip("-").isdigit():
        if not Path(policy).is_file():
            raise ValueError(f"--policy {policy!r}: neither a row number of {run_dir}/pareto.parquet nor a policy file")
        chosen = Policy.load(policy)
        chosen.check_matches(layer_names)
        return chosen, None, None
    if rows.empty:
        raise ValueError(f"{run_dir} has no final policies (no pareto.parquet rows); finish the run first "
                         "(evo search --resume) or pass --policy FILE")
    if policy is None:
        # validation accuracy (the mean over a policy's seeds): the test split never selects; the
        # shipped model is the seed-0 fine-tune the final trial saved
        best = best_final({**r, "row": i} for i, r in rows.to_dict("index").items())
        if best is None:
            raise ValueError(f"{run_dir}: no final policy is within the budget; pass --policy FILE or ROW "
                             f"(0..{len(rows) - 1})")
        index = int(best["row"])
    else:
        index = int(policy)
        if not 0 <= index < len(rows):
            raise ValueError(f"--policy {policy}: {run_dir}/pareto.parquet has rows 0..{len(rows) - 1}")
        if rows.status[index] != "ok":
            raise ValueError(f"--policy {index}: that final trial failed ({rows.error[index]}); pick another row")
    row = rows.iloc[index].to_dict()
    return Policy.from_dict(json.loads(row["policy"])), row["genome_key"], row


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder; pick a new one")


def export_run(run_dir, *, out, policy: str | None = None, log: Callable = print) -> dict:
    """Write the four files into ``out`` and return what was measured."""
    from evo.runs.prepare import prepare

    run = read_run(run_dir)
    if run.method == "admm":
        raise ValueError(f"{run.path} is an ADMM run: its policies are in policies/*.yaml; export them with "
                         "--policy FILE from a search or baseline run of the same model")
    out = Path(out).expanduser().resolve()
    check_out(out)
    cfg = run_config(run)
    chosen, genome_key, row = choose_policy(run.path, policy, [layer["name"] for layer in run.meta["layers"]])
    from trainables.data import to_tensors

    prep = prepare(cfg, resume=True, log=log)  # the run's data, split, base model (cached) and specs
    tensors = to_tensors(prep.splits)  # once, for the calibration batch and the test-split checks
    model = compressed_model(prep, chosen, genome_key, tensors, log=log)
    return write_exports(prep, model, chosen, out, tensors, row=row, log=log)


def run_config(run) -> "SearchConfig":
    """The config a run folder (``evo.runs.folder.RunFolder``) was made with, located at the folder
    itself: its saved storage may be relative to where the run started, or the folder moved since."""
    from evo.runs.config import SearchConfig

    cfg = SearchConfig.from_mapping(run.meta["config"], where=f"{run.path}/run.yaml")
    return cfg.replace(address=None, storage=str(run.path.parent), name=run.path.name)


def compressed_model(prep, policy, genome_key: str | None, tensors, *, log: Callable):
    """The final trial's fine-tuned model (models/<genome>.pt) loaded into the base model compressed
    as a trial does (``tuned_model`` with no steps), or for a policy file the same compressed model
    fine-tuned here the way a final trial is."""
    import torch

    from evo.runs.pipeline import trial_settings
    from trainables.policy_trial import final_model_path, tuned_model

    settings = trial_settings(prep)
    saved = final_model_path(settings.models_dir, genome_key) if genome_key else None
    found = bool(saved) and Path(saved).is_file()
    if not found:
        log(f"export: fine-tuning the policy {settings.final_steps} steps (no saved final model for it)")
    model, _ = tuned_model(policy, splits=tensors, base_state=prep.base_state, specs=prep.specs, settings=settings,
                           steps=0 if found else settings.final_steps)
    if found:
        model.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
        log(f"export: the final trial's model {saved}")
    return model.eval()


def write_exports(prep, model, policy, out: Path, tensors, *, row: dict | None, log: Callable) -> dict:
    import torch

    from trainables.export import check_onnx, export_onnx, load_compressed, save_compressed, write_report

    saved = save_compressed(model, policy, prep.specs, out / "model.evo.pt", model_ref=prep.model_ref)
    with torch.no_grad():
        ours, theirs = load_compressed(saved["path"])(tensors.test_x), model(tensors.test_x)
    exact = bool(torch.equal(ours, theirs))
    reload = {"agreement": float((ours.argmax(1) == theirs.argmax(1)).float().mean()),
              "max_difference": float((ours - theirs).abs().max()) if ours.numel() else 0.0}
    # a folded BatchNorm reorders float arithmetic: equal up to rounding, not always bit for bit
    log(f"model.evo.pt: payload {saved['payload_bytes']:,} bytes ({saved['file_bytes']:,} on disk) against the "
        f"priced honest size {saved['size_bits_honest'] / 8:,.0f} bytes: {saved['payload_vs_honest']:.3f}x; "
        f"evo.load_compressed on the test split: outputs "
        f"{'identical to' if exact else 'within %.1e of' % reload['max_difference']} the fake-quantized model's, "
        f"top-1 agreement {reload['agreement']:.2%}")
    export_onnx(model, policy, prep.specs, out / "model.onnx", tensors.test_x[:2])
    checked = check_onnx(out / "model.onnx", model, tensors.test_x, tensors.test_y)
    log(f"model.onnx in onnxruntime on the test split ({checked['samples']:,} images): top-1 agreement "
        f"{checked['agreement']:.2%} with the fake-quantized PyTorch model; test accuracy "
        f"{checked['onnx_accuracy']:.2%} (onnxruntime) vs {checked['torch_accuracy']:.2%} (PyTorch)")
    measured = {"payload bytes": f"{saved['payload_bytes']:,}", "file bytes": f"{saved['file_bytes']:,}",
                "payload / priced honest size": f"{saved['payload_vs_honest']:.3f}",
                "reload (evo.load_compressed): outputs": "identical" if exact else f"within {reload['max_difference']:.1e}",
                "reload (evo.load_compressed): top-1 agreement (test split)": f"{reload['agreement']:.4%}",
                "onnxruntime top-1 agreement (test split)": f"{checked['agreement']:.4%}",
                "test accuracy, onnxruntime / PyTorch": f"{checked['onnx_accuracy']:.4f} / {checked['torch_accuracy']:.4f}"}
    if row is not None:
        measured["run's final trial: validation / test accuracy"] = f"{row['accuracy']:.4f} / {row['test_accuracy']:.4f}"
    write_report(out, prep.specs, policy, target=prep.cfg.target, measured=measured,
                 title=f"{prep.cfg.model} on {prep.cfg.dataset}, budget {prep.cfg.budget}")
    log(f"exported: {', '.join(str(out / name) for name in OUTPUTS)}")
    return {**saved, **checked, "exact_reload": exact, "reload_agreement": reload["agreement"], "out": str(out)}
