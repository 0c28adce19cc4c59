"""The per-layer compression policy: the one vocabulary evo, trainables and hardware share.

A policy gives every prunable layer (conv / linear, by module name) a pruning amount,
a weight bit-width and an activation bit-width. The pruning amount is either an
unstructured ``sparsity`` (fraction of weights set to zero) or, when the policy's
``structure`` is ``"channel"``, a ``keep_ratio`` (fraction of output channels kept).
Bits of 32 mean float (not quantized). Activation bits apply to the layer's *input*
activations, i.e. the operands of its multiply-accumulates.

Pure Python: no torch, no Ray.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping
from .checks import is_number

VALID_BITS = (2, 3, 4, 5, 6, 7, 8, 32)
FLOAT_BITS = 32
STRUCTURES = ("unstructured", "channel")


def check_bits(bits: object, what: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in VALID_BITS:
        raise ValueError(f"{what}={bits!r} is not a valid bit-width; valid choices: {list(VALID_BITS)}")
    return bits


def check_sparsity(sparsity: object, what: str = "sparsity") -> float:
    if not is_number(sparsity):
        raise ValueError(f"{what}={sparsity!r} must be a number in [0, 1)")
    value = float(sparsity)
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ValueError(f"{what}={sparsity!r} is outside [0, 1)")
    return value


def check_keep_ratio(keep_ratio: object, what: str = "keep_ratio") -> float:
    if not is_number(keep_ratio):
        raise ValueError(f"{what}={keep_ratio!r} must be a number in (0, 1]")
    value = float(keep_ratio)
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"{what}={keep_ratio!r} is outside (0, 1]")
    return value


@dataclass(frozen=True)
class LayerPolicy:
    """Compression of one layer. Validated at construction."""

    sparsity: float = 0.0
    keep_ratio: float = 1.0
    weight_bits: int = FLOAT_BITS
    activation_bits: int = FLOAT_BITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity))
        object.__setattr__(self, "keep_ratio", check_keep_ratio(self.keep_ratio))
        check_bits(self.weight_bits, "weight_bits")
        check_bits(self.activation_bits, "activation_bits")

    def to_dict(self) -> dict:
        return {
            "sparsity": self.sparsity,
            "keep_ratio": self.keep_ratio,
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
        }

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "layer") -> "LayerPolicy":
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of sparsity/keep_ratio/weight_bits/activation_bits, got {data!r}")
        known = {"sparsity", "keep_ratio", "weight_bits", "activation_bits"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
        try:
            return cls(**{k: data[k] for k in data})
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


@dataclass(frozen=True)
class Policy:
    """A compression policy: an ordered tuple of (layer name, LayerPolicy)."""

    layers: tuple[tuple[str, LayerPolicy], ...]
    structure: str = "unstructured"
    _index: dict = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure={self.structure!r} is not valid; valid choices: {list(STRUCTURES)}")
        layers = tuple((str(name), lp) for name, lp in self.layers)
        names = [name for name, _ in layers]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"policy names layers more than once: {dupes}")
        for name, lp in layers:
            if not isinstance(lp, LayerPolicy):
                raise ValueError(f"layer {name!r}: expected a LayerPolicy, got {type(lp).__name__}")
            if self.structure == "unstructured" and lp.keep_ratio != 1.0:
                raise ValueError(f"layer {name!r}: keep_ratio={lp.keep_ratio} needs structure='channel'")
            if self.structure == "channel" and lp.sparsity != 0.0:
                raise ValueError(f"layer {name!r}: sparsity={lp.sparsity} needs structure='unstructured'")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "_index", dict(layers))

    # -- access -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.layers)

    def __getitem__(self, name: str) -> LayerPolicy:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"policy has no layer {name!r}; layers: {list(self.names)}") from None

    def __len__(self) -> int:
        return len(self.layers)

    def check_matches(self, layer_names: Iterable[str]) -> None:
        """Raise ValueError unless the policy names exactly these layers."""
        expected = list(layer_names)
        expected_set = set(expected)
        missing = [n for n in expected if n not in self._index]
        extra = [n for n in self.names if n not in expected_set]
        if missing or extra:
            raise ValueError(
                f"policy does not match the model: missing layers {missing}, unknown layers {extra}; "
                f"the model's prunable layers are {expected}"
            )

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def uniform(
        cls,
        layer_names: Iterable[str],
        *,
        weight_bits: int = FLOAT_BITS,
        activation_bits: int = FLOAT_BITS,
        sparsity: float = 0.0,
        keep_ratio: float = 1.0,
        structure: str = "unstructured",
    ) -> "Policy":
        lp = LayerPolicy(sparsity=sparsity, keep_ratio=keep_ratio, weight_bits=weight_bits, activation_bits=activation_bits)
        return cls(tuple((name, lp) for name in layer_names), structure=structure)

    @classmethod
    def float(cls, layer_names: Iterable[str]) -> "Policy":
        return cls.uniform(layer_names)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"structure": self.structure, "layers": {name: lp.to_dict() for name, lp in self.layers}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Policy":
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ValueError("a policy must be a mapping with a 'layers' key (and optionally 'structure')")
        unknown = set(data) - {"layers", "structure"}
        if unknown:
            raise ValueError(f"policy: unknown keys {sorted(unknown)}; valid keys: ['layers', 'structure']")
        layers = data["layers"]
        if not isinstance(layers, Mapping) or not layers:
            raise ValueError("policy 'layers' must be a non-empty mapping of layer name -> settings")
        structure = data.get("structure", "unstructured")
        return cls(
            tuple((name, LayerPolicy.from_dict(lp, where=f"layer {name!r}")) for name, lp in layers.items()),
            structure=structure,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write as YAML (.yaml/.yml) or JSON (anything else), atomically."""
        import os
        import tempfile

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        """Read a policy file (YAML or JSON). Raises ValueError naming the file on any problem."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"policy file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as err:  # malformed YAML/JSON
            raise ValueError(f"policy file {path} is not valid YAML/JSON: {err}") from None
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"policy file {path}: {err}") from None
