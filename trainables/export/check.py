"""Run an exported ONNX graph in onnxruntime and compare it with the PyTorch model.

onnxruntime's graph optimizer rewrites a float bias between DequantizeLinear-fed
Conv/Gemm inputs into int32 on the grid input scale x weight scale
(``WeightBiasQuantization``), as an integer engine would. At 2-3 bits that grid is coarse
(LeNet-5 fc1 at w2a3: logits move by up to 0.11, 0.5 % of the test predictions change), and
the fake-quantized model, like the priced size, keeps 32-bit float biases; so the check
turns that one rewrite off unless ``quantize_biases=True``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


BIAS_QUANTIZATION_PASS = "WeightBiasQuantization"


def check_onnx(path, torch_model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000,
               quantize_biases: bool = False) -> dict:
    """Top-1 agreement of onnxruntime (CPUExecutionProvider) with ``torch_model`` over the
    whole split, both accuracies and the largest logit difference."""
    import onnxruntime

    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length; got {len(x)} and {len(y)}")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                           disabled_optimizers=[] if quantize_biases else [BIAS_QUANTIZATION_PASS])
    input_name = session.get_inputs()[0].name
    device = next(torch_model.parameters()).device
    torch_model.eval()
    onnx_top, torch_top, max_diff = [], [], 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            torch_logits = torch_model(batch.to(device)).cpu().numpy()
            onnx_logits = session.run(None, {input_name: batch.cpu().numpy().astype(np.float32)})[0]
            max_diff = max(max_diff, float(np.abs(onnx_logits - torch_logits).max()))
            onnx_top.append(onnx_logits.argmax(axis=1))
            torch_top.append(torch_logits.argmax(axis=1))
    onnx_top, torch_top, labels = np.concatenate(onnx_top), np.concatenate(torch_top), y.cpu().numpy()
    return {"samples": len(labels), "agreement": float((onnx_top == torch_top).mean()),
            "onnx_accuracy": float((onnx_top == labels).mean()),
            "torch_accuracy": float((torch_top == labels).mean()), "max_abs_logit_diff": max_diff}
