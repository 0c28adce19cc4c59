"""The shared value checks: bools, NaN and infinities are refused where numbers are expected, and
every message names the value and the valid range."""

import math

import numpy as np
import pytest

from hardware.checks import check_bool, check_int, check_number, check_positive, check_probability


@pytest.mark.parametrize("value", [True, 1.5, "3", None, float("nan"), 2])
def test_check_int_refuses_what_is_not_an_integer_in_range(value):
    with pytest.raises(ValueError, match=rf"x={value!r} must be an integer >= 3"):
        check_int("x", value, minimum=3)


def test_check_int_accepts_numpy_integers_and_bounds():
    assert check_int("x", np.int64(4), minimum=0) == 4 and type(check_int("x", np.int64(4))) is int
    assert check_int("x", 3, minimum=3, maximum=3) == 3
    with pytest.raises(ValueError, match=r"in \[0, 3\]"):
        check_int("x", 4, minimum=0, maximum=3)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, "1", None])
def test_check_number_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(ValueError, match="must be a finite number"):
        check_number("gpus", value, minimum=0)


def test_check_number_bounds_are_named():
    assert check_number("p", 0.0, minimum=0, maximum=1) == 0.0
    with pytest.raises(ValueError, match=r"lr=0 must be a finite number > 0"):
        check_positive("lr", 0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        check_probability("p", 1.01)
    with pytest.raises(ValueError, match=r"in \(0, 0.5\)"):
        check_number("v", 0.5, above=0, below=0.5)
    assert check_positive("lr", np.float32(0.5)) == 0.5 and math.isfinite(check_positive("lr", 1e300))


def test_check_bool():
    assert check_bool("flag", False) is False
    with pytest.raises(ValueError, match="flag=1 must be true or false"):
        check_bool("flag", 1)
