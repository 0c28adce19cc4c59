"""``model.evo.pt``: a compressed model as packed integers, and its exact reconstruction.

``save_compressed`` writes one record per compressed layer (``records``, each BatchNorm that
reads only its layer folded in: ``fold``) plus the float tensors of everything else
(norms that cannot fold, uncompressed modules), the policy, the
specs and a model reference (``trainables.user_model``: a zoo name with its shapes, or the
user's ``file.py:function`` with its arguments) from which ``load_compressed`` rebuilds the
architecture. Only plain tensors, ints, strs, lists and
dicts are saved, so ``torch.load(weights_only=True)`` reads the file.

The payload (the bytes of the saved tensors) is what the priced honest size
(``hardware.size.honest_size_bits``) counts, up to: each packed array's last byte, the
input quantizers' scale and zero point, the kept-channel bitmask of a channel-pruned layer,
relative-index fillers, and the four tensors per channel of a norm that cannot fold. The
pickle container adds keys and headers on top.

Folding changes the arithmetic (f * (W z) + t becomes (f W) z + t'), so a loaded model's
outputs equal the fake-quantized model's up to float rounding, not bit for bit, where a
norm was folded; elsewhere they are equal exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from hardware.cost import effective_layers
from hardware.policy import Policy
from hardware.size import honest_size_bits
from hardware.specs import LayerSpec

from ..compress import compressible_layer
from ..models import MODELS
from ..user_model import build_from_reference
from ..quantize import ChannelMask, InputQuantizer, WeightTransform
from .channels import channel_slices, kept_columns
from .fold import fold_norms, replace_with_identity
from .grid import WeightGrid, layer_grid
from .records import decode_layer, decode_rows, encode_layer

FILE_FORMAT = 1
_NOT_SAVED_AS_FLOAT = (WeightTransform, ChannelMask, InputQuantizer, WeightGrid, parametrize.ParametrizationList)


@dataclass(frozen=True)
class CompressedFile:
    """What ``read_compressed`` returns: the rebuilt model and what it was compressed with."""

    model: nn.Module
    policy: Policy
    specs: list[LayerSpec]
    model_ref: dict


def save_compressed(model: nn.Module, policy: Policy, specs: Sequence[LayerSpec], path, *,
                    model_ref: dict) -> dict:
    """Write ``model`` (compressed by ``apply_policy`` or read by ``load_compressed``) to
    ``path``; returns payload bytes, file bytes and the priced ``size_bits_honest``."""
    _check_model_ref(model_ref)
    policy.check_matches([spec.name for spec in specs])
    layers = {spec.name: compressible_layer(model, spec.name) for spec in specs}
    grids = {name: layer_grid(layer) for name, layer in layers.items()}
    shipped = fold_norms(model, grids, layers)
    slices = channel_slices(specs, policy, {name: grid.kept_rows() for name, grid in grids.items()}, shipped.unfolded)
    records = {name: encode_layer(layers[name], shipped.grids[name], shipped.biases[name], *slices[name], name)
               for name in layers}
    float_tensors = _float_tensors(model, set(layers), set(shipped.folded.values()))
    payload = {"format": FILE_FORMAT, "model_ref": model_ref, "policy": policy.to_dict(),
               "specs": [spec.to_dict() for spec in specs], "layers": records, "float_tensors": float_tensors,
               "folded_norms": shipped.folded}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    honest_bits = sum(honest_size_bits(layer) for layer in effective_layers(specs, policy))
    payload_bytes = tensor_bytes(records) + tensor_bytes(float_tensors)
    return {"path": str(path), "payload_bytes": payload_bytes, "file_bytes": os.path.getsize(path),
            "size_bits_honest": honest_bits, "payload_vs_honest": 8 * payload_bytes / honest_bits}


def tensor_bytes(tree) -> int:
    """Bytes of every tensor in a nest of dicts and lists (the file's payload)."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(value) for value in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(tensor_bytes(value) for value in tree)
    return 0


def _float_tensors(model: nn.Module, compressed: set[str], folded: set[str]) -> dict[str, torch.Tensor]:
    """State-dict-named effective tensors of everything but the compressed layers' weight and
    bias and the ``folded`` norms (parametrized tensors are read through their
    parametrization, e.g. a masked BN)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        if isinstance(module, _NOT_SAVED_AS_FLOAT) or any(prefix == n or prefix.startswith(n + ".") for n in folded):
            continue
        names = [name for name, _ in module.named_parameters(recurse=False)]
        names += [name for name, buffer in module.named_buffers(recurse=False) if buffer is not None]
        if parametrize.is_parametrized(module):
            names += list(module.parametrizations.keys())
        for name in names:
            if prefix in compressed and name in ("weight", "bias"):
                continue
            tensors[f"{prefix}.{name}" if prefix else name] = getattr(module, name).detach().cpu().clone()
    return tensors


def _check_model_ref(model_ref: object) -> None:
    kinds = {"zoo": ("name", "in_channels", "num_classes", "image_shape"), "user": ("spec", "model_args")}
    if not isinstance(model_ref, dict) or model_ref.get("kind") not in kinds or \
            any(key not in model_ref for key in kinds[model_ref["kind"]]) or \
            (model_ref["kind"] == "zoo" and model_ref["name"] not in MODELS):
        raise ValueError(f"model_ref={model_ref!r} must be a model reference of trainables.user_model.resolve_model: "
                         f"{{'kind': 'zoo', 'name': one of {sorted(MODELS)}, 'in_channels', 'num_classes', "
                         "'image_shape'}} or {'kind': 'user', 'spec': 'file.py:function', 'model_args': {...}}")


def read_compressed(path) -> CompressedFile:
    """Rebuild the model in ``path`` with dequantized weights (codes x scales) and its input
    quantizers re-attached: its outputs equal those of the fake-quantized model saved."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"compressed model file not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{path}: not an evo compressed model (format {FILE_FORMAT}); write it with save_compressed")
    model_ref, specs = payload["model_ref"], [LayerSpec.from_dict(data) for data in payload["specs"]]
    _check_model_ref(model_ref)
    model = build_from_reference(model_ref)
    replace_with_identity(model, payload["folded_norms"].values())  # their maps are in the layers' records
    _load_float_tensors(model, payload["float_tensors"], [spec.name for spec in specs], path)
    records = payload["layers"]
    rows = {name: decode_rows(record) for name, record in records.items()}
    for spec in specs:
        decode_layer(records[spec.name], compressible_layer(model, spec.name), kept_columns(spec, rows), spec.name)
    return CompressedFile(model.eval(), Policy.from_dict(payload["policy"]), specs, model_ref)


def load_compressed(path) -> nn.Module:
    """The model of a ``model.evo.pt`` file, in eval mode (see ``read_compressed``)."""
    return read_compressed(path).model


def _load_float_tensors(model: nn.Module, tensors: dict, layer_names: list[str], path: Path) -> None:
    result = model.load_state_dict(tensors, strict=False)
    from_records = {f"{name}.{what}" for name in layer_names for what in ("weight", "bias")}
    missing = sorted(set(result.missing_keys) - from_records)
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: the file does not fit the model reference: missing {missing}, "
                         f"unexpected {sorted(result.unexpected_keys)}")
