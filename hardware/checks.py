"""The project's value checks, one small set used everywhere a value is owned (configs, the
search core, the cost models, the trainables): a ValueError naming the value and what is valid.

Here, at the bottom of the import chain (evo -> trainables -> hardware), so every package can use
them; pure Python. ``bool`` is refused where a number is expected (``True`` is an ``int``), and so
are NaN and infinities unless a caller allows them.
"""

from __future__ import annotations

import math
from numbers import Integral, Real


def is_number(value) -> bool:
    """A real number that is not a bool (numpy scalars included), finite or not."""
    return isinstance(value, Real) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    return is_number(value) and math.isfinite(value)


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum]."""
    if not isinstance(value, Integral) or isinstance(value, bool) or \
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = _bounds(minimum, maximum, "[", "]")
        raise ValueError(f"{name}={value!r} must be an integer{bounds}")
    return int(value)


def check_number(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None) -> float:
    """``value`` as a finite float; ``minimum``/``maximum`` are inclusive bounds, ``above``/``below``
    exclusive ones."""
    ok = is_finite_number(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum) \
        and (above is None or value > above) and (below is None or value < below)
    if not ok:
        low = ("[", minimum) if minimum is not None else ("(", above)
        high = ("]", maximum) if maximum is not None else (")", below)
        bounds = _bounds(low[1], high[1], low[0], high[0])
        raise ValueError(f"{name}={value!r} must be a finite number{bounds}")
    return float(value)


def check_positive(name: str, value) -> float:
    return check_number(name, value, above=0.0)


def check_probability(name: str, value) -> float:
    return check_number(name, value, minimum=0.0, maximum=1.0)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be true or false")
    return value


def _bounds(low, high, opening: str, closing: str) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>=' if opening == '[' else '>'} {low:g}"
    if low is None:
        return f" {'<=' if closing == ']' else '<'} {high:g}"
    return f" in {opening}{low:g}, {high:g}{closing}"
