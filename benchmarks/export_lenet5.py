"""LeNet-5 on Fashion-MNIST through the whole export: model.evo.pt (payload vs the priced
honest size, exact reload) and ONNX (onnxruntime agreement and accuracy on the test split).

    PYTHONPATH=. python benchmarks/export_lenet5.py [--out DIR]

The float model comes from the pretrain cache (trained on first use, ~1-2 min on CPU);
the policy is the mixed one of evo issue 11 (no fine-tuning: the check is export fidelity).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hardware.policy import LayerPolicy, Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy
from trainables.data import load_dataset, to_tensors
from trainables.export import check_onnx, export_onnx, load_compressed, save_compressed, write_report
from trainables.user_model import build_from_reference, resolve_model
from trainables.pretrain import pretrain
from trainables.train import evaluate

POLICIES = {
    "unstructured": Policy((("conv1", LayerPolicy(0.5, 1.0, 4, 8)), ("conv2", LayerPolicy(0.8, 1.0, 3, 4)),
                            ("fc1", LayerPolicy(0.9, 1.0, 2, 3)), ("fc2", LayerPolicy(0.0, 1.0, 8, 8)))),
    "channel": Policy((("conv1", LayerPolicy(0.0, 0.5, 4, 8)), ("conv2", LayerPolicy(0.0, 0.8, 3, 4)),
                       ("fc1", LayerPolicy(0.0, 0.5, 4, 4)), ("fc2", LayerPolicy(0.0, 1.0, 8, 8))),
                      structure="channel"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/evo-export-lenet5")
    out = Path(parser.parse_args().out)
    torch.set_num_threads(1)
    splits = to_tensors(load_dataset("fashion-mnist"))
    _, model_ref = resolve_model("lenet5", None, in_channels=splits.in_channels, num_classes=splits.num_classes,
                                 image_shape=splits.image_shape)
    float_state = pretrain("lenet5", "fashion-mnist").state_dict
    specs = profile_model(build_from_reference(model_ref), splits.image_shape)
    for structure, policy in POLICIES.items():
        model = build_from_reference(model_ref)
        model.load_state_dict(float_state)
        apply_policy(model.eval(), policy, specs, splits.train_x[:2048])
        folder = out / structure
        saved = save_compressed(model, policy, specs, folder / "model.evo.pt", model_ref=model_ref)
        loaded = load_compressed(folder / "model.evo.pt")
        with torch.no_grad():
            exact = all(torch.equal(model(batch), loaded(batch)) for batch in splits.test_x.split(1000))
        exported = export_onnx(model, policy, specs, folder / "model.onnx", splits.test_x[:2])
        started = time.perf_counter()
        checked = check_onnx(folder / "model.onnx", model, splits.test_x, splits.test_y)
        checked["seconds"] = round(time.perf_counter() - started, 1)
        with_int32_biases = check_onnx(folder / "model.onnx", model, splits.test_x, splits.test_y, quantize_biases=True)
        checked["agreement_ort_int32_biases"] = with_int32_biases["agreement"]
        checked["onnx_accuracy_ort_int32_biases"] = with_int32_biases["onnx_accuracy"]
        write_report(folder, specs, policy, title=f"LeNet-5, {structure} mixed policy",
                     measured={"payload_bytes": saved["payload_bytes"], "file_bytes": saved["file_bytes"],
                               **checked})
        print(json.dumps({"structure": structure, **saved, "reload_exact": exact, "onnx_ops": exported["ops"],
                          **checked, "torch_test_accuracy_evaluate": evaluate(model, splits.test_x,
                                                                              splits.test_y)["accuracy"]}))


if __name__ == "__main__":
    main()
