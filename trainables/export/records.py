"""One compressed layer <-> one record of plain tensors (what ``model.evo.pt`` holds per layer).

A record keeps what the priced honest size counts and what the model needs to be rebuilt
exactly: the kept weights as packed integer codes (float32 values for 32-bit weights),
their sparse index (unstructured) or the kept output channels as a bitmask (channel), the
kept channels' float32 scales and biases (a folded BatchNorm's scale and shift merged into
them: ``fold``), and the input quantizer's state. Everything is
a torch tensor, int or str, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hardware.policy import FLOAT_BITS

from ..compress import attach_input_quantizer
from ..quantize import InputQuantizer
from .grid import LayerGrid, WeightGrid, dequantize, integer_codes
from .pack import decode_sparse_index, encode_sparse_index, pack_codes, unpack_codes


def _uint8(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))


def _block(tensor: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """The kept rows and input columns of a weight-shaped tensor."""
    tensor = tensor if rows is None else tensor[rows]
    return tensor if cols is None else tensor[:, cols]


def encode_layer(layer: nn.Module, grid: LayerGrid, bias: torch.Tensor | None, rows: torch.Tensor | None,
                 cols: torch.Tensor | None, name: str) -> dict:
    """The record of one layer with ``grid`` and ``bias`` as it ships (a BatchNorm folded in:
    ``fold``); ``rows``/``cols`` are the kept channel indices (None: all)."""
    kept = _block(grid.kept(), rows, cols)
    record: dict = {"shape": list(grid.weight.shape), "weight_bits": grid.weight_bits,
                    "rows": None if rows is None else _uint8(np.packbits(grid.kept_rows().numpy())),
                    "block_shape": list(kept.shape),
                    "index": encode_sparse_index(kept.reshape(-1).numpy()) if rows is None and cols is None
                    else encode_sparse_index(np.ones(kept.numel(), bool))}
    record["index"]["data"] = _uint8(record["index"]["data"])
    if grid.scales is None:
        record["values"] = _block(grid.weight, rows, cols)[kept].float().contiguous()
    else:
        codes = _block(integer_codes(grid, name), rows, cols)[kept]
        record.update(codes=_uint8(pack_codes(codes.numpy(), grid.weight_bits)), quant_min=grid.quant_min,
                      quant_max=grid.quant_max,
                      scales=(grid.scales if rows is None else grid.scales[rows]).float().contiguous())
    if grid.mask is not None:
        record["mask_per_channel"] = grid.mask.numel() == grid.weight.shape[0]
    record["bias"] = None if bias is None else _rows(bias, rows).float().contiguous()
    quantizer = getattr(layer, "input_quantizer", None)
    record["input_quantizer"] = None if quantizer is None else {
        "activation_bits": quantizer.activation_bits,
        "state": {key: value.detach().cpu().clone() for key, value in quantizer.state_dict().items()}}
    return record


def _rows(tensor: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return tensor if rows is None else tensor[rows]


def decode_rows(record: dict) -> torch.Tensor:
    """Boolean vector over output channels: those the record keeps."""
    if record["rows"] is None:
        return torch.ones(record["shape"][0], dtype=torch.bool)
    return torch.from_numpy(np.unpackbits(record["rows"].numpy(), count=record["shape"][0]).astype(bool))


def decode_layer(record: dict, layer: nn.Module, cols: torch.Tensor | None, name: str) -> None:
    """Write the record's dequantized weight, bias, grid and input quantizer into the fresh
    ``layer`` (pruned rows and columns become zeros)."""
    shape, block_shape = record["shape"], record["block_shape"]
    if list(layer.weight.shape) != shape:
        raise ValueError(f"layer {name!r}: the file holds a weight of shape {shape}, the model's is "
                         f"{list(layer.weight.shape)}; the model reference does not match the file")
    row_mask = decode_rows(record)
    rows = row_mask.nonzero().flatten()
    cols = torch.arange(shape[1]) if cols is None else cols
    kept = torch.from_numpy(decode_sparse_index(
        {**record["index"], "data": record["index"]["data"].numpy()}, int(np.prod(block_shape)))).reshape(block_shape)
    block = torch.zeros(block_shape)
    if record["weight_bits"] == FLOAT_BITS:
        block[kept] = record["values"]
        scales = None
    else:
        codes = torch.zeros(block_shape, dtype=torch.int64)
        codes[kept] = torch.from_numpy(unpack_codes(record["codes"].numpy(), record["weight_bits"],
                                                    int(kept.sum())))
        block, scales = dequantize(codes, record["scales"]), torch.zeros(shape[0])
        scales[rows] = record["scales"]
    weight = torch.zeros(shape)
    weight[rows[:, None], cols[None, :]] = block
    with torch.no_grad():
        layer.weight.copy_(weight)
        if record["bias"] is not None:
            if layer.bias is None:  # a folded BatchNorm's shift, on a layer built without a bias
                layer.bias = nn.Parameter(torch.zeros(shape[0]))
            layer.bias.zero_()
            layer.bias[rows] = record["bias"]
    layer.weight_grid = WeightGrid(record["weight_bits"], record.get("quant_min", 0), record.get("quant_max", 0),
                                   scales, _mask(record, row_mask, weight.shape, rows, cols, kept))
    if record["input_quantizer"] is not None:
        saved = record["input_quantizer"]
        quantizer = InputQuantizer(saved["activation_bits"], 0.0, 1.0)
        quantizer.load_state_dict(saved["state"])
        attach_input_quantizer(layer, quantizer)


def _mask(record: dict, row_mask: torch.Tensor, shape, rows, cols, kept) -> torch.Tensor | None:
    """The pruning mask as apply_policy held it: per channel, per weight, or None."""
    if "mask_per_channel" not in record:
        return None
    if record["mask_per_channel"]:
        return row_mask.float().reshape(-1, *([1] * (len(shape) - 1)))
    mask = torch.zeros(shape)
    mask[rows[:, None], cols[None, :]] = kept.float()
    return mask
