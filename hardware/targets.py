"""Hardware targets: the few numbers a first-order latency and energy model needs.

Each target is a YAML file in ``hardware/targets/`` (or any path a user passes). The
``kind`` says how the peak multiply-accumulate rate depends on the operand bit-widths
(see ``hardware.latency``):

* ``bitserial`` -- one operand bit pair per lane per cycle (Stripes/Loom-like):
  peak = ``peak_macs_per_s`` / (b_w * b_a), so ``peak_macs_per_s`` is the 1x1-bit rate.
* ``bricks`` -- BitFusion-like 2-bit bricks: operands round up to 2/4/8 bits and
  ``peak_macs_per_s`` is the 8x8-bit rate (4x4 runs 4x faster, 2x2 16x).
* ``int8`` -- an INT8 NPU: every width up to 8 bits runs at ``peak_macs_per_s``.

A 32-bit (float) operand always runs at ``float_peak_macs_per_s``. Targets that
``skips_zeros`` only spend time and energy on kept weights (unstructured sparsity helps
compute); the others multiply the zeros too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from pathlib import Path
from .checks import is_number

TARGET_DIR = Path(__file__).with_name("targets")
TARGET_NAMES: tuple[str, ...] = tuple(sorted(p.stem for p in TARGET_DIR.glob("*.yaml")))
DEFAULT_TARGET = "bitserial"
TARGET_KINDS = ("bitserial", "bricks", "int8")
_RATE_FIELDS = ("peak_macs_per_s", "float_peak_macs_per_s", "bandwidth_bits_per_s", "memory_pj_per_bit")


@dataclass(frozen=True)
class Target:
    """One hardware target. Frozen and hashable, so cost results can be cached per target."""

    name: str
    kind: str
    peak_macs_per_s: float  # at the kind's reference width: 1x1 (bitserial), 8x8 (bricks, int8)
    float_peak_macs_per_s: float  # when either operand is 32-bit float
    bandwidth_bits_per_s: float  # off-chip (or buffer) bandwidth of the roofline
    memory_pj_per_bit: float  # energy of moving one bit to or from that memory
    skips_zeros: bool = False
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target {self.name!r}: kind={self.kind!r}; valid choices: {list(TARGET_KINDS)}")
        for what in _RATE_FIELDS:
            value = getattr(self, what)
            if not is_number(value):
                raise ValueError(f"target {self.name!r}: {what}={value!r} must be a positive number")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"target {self.name!r}: {what}={value!r} must be a positive finite number")
            object.__setattr__(self, what, float(value))
        if not isinstance(self.skips_zeros, bool):
            raise ValueError(f"target {self.name!r}: skips_zeros={self.skips_zeros!r} must be true or false")

    def macs_executed(self, layer) -> int:
        """MACs the hardware actually performs for an ``EffectiveLayer``."""
        return layer.macs_effective if self.skips_zeros else layer.macs_dense

    @classmethod
    def from_dict(cls, data: object, where: str) -> "Target":
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of target settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
        values = dict(data)
        for what in _RATE_FIELDS:
            # PyYAML reads "6.4e13" (no dot, no sign) as a string; accept it as the number it means.
            if isinstance(values.get(what), str):
                try:
                    values[what] = float(values[what])
                except ValueError:
                    raise ValueError(f"{where}: {what}={data[what]!r} is not a number") from None
        try:
            return cls(**values)
        except TypeError as err:  # a required key is missing
            raise ValueError(f"{where}: {err}; required keys: name, kind, {', '.join(_RATE_FIELDS)}") from None
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


@functools.lru_cache(maxsize=64)
def load_target(name_or_path: str) -> Target:
    """Load a built-in target by name or a target YAML file by path (cached: searches call this often)."""
    if isinstance(name_or_path, Target):
        return name_or_path
    text = str(name_or_path)
    if text in TARGET_NAMES:
        path = TARGET_DIR / f"{text}.yaml"
    elif text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"target file not found: {path}; built-in targets: {list(TARGET_NAMES)}")
    else:
        raise ValueError(
            f"unknown hardware target {text!r}; valid choices: {list(TARGET_NAMES)} or the path of a target .yaml file"
        )
    import yaml  # only here: a cost call with a Target in hand never touches YAML

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"target file {path} is not valid YAML: {err}") from None
    target = Target.from_dict(data, where=f"target file {path}")
    if text in TARGET_NAMES and target.name != text:
        raise ValueError(f"target file {path} names itself {target.name!r}; expected {text!r}")
    return target


def as_target(target: "Target | str") -> Target:
    """Accept a Target or anything ``load_target`` accepts."""
    return target if isinstance(target, Target) else load_target(target)
