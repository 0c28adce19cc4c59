"""Target files: the built-ins load and say where their numbers come from; bad files fail clearly."""

import pytest

from hardware.targets import DEFAULT_TARGET, TARGET_KINDS, TARGET_NAMES, Target, load_target

GOOD = """\
name: custom
kind: bricks
peak_macs_per_s: 1e12
float_peak_macs_per_s: 1.0e+10
bandwidth_bits_per_s: 1.0e+11
memory_pj_per_bit: 0.16
"""


def test_builtin_targets():
    assert {"bitserial", "bitfusion", "int8-npu"} <= set(TARGET_NAMES)
    assert DEFAULT_TARGET in TARGET_NAMES
    kinds = set()
    for name in TARGET_NAMES:
        target = load_target(name)
        assert target.name == name
        assert target.description and "approximation" in target.source
        kinds.add(target.kind)
    assert kinds == set(TARGET_KINDS)
    assert load_target("bitserial") is load_target("bitserial")  # cached: no YAML read per call


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="tpu-v9.*bitfusion.*bitserial.*int8-npu"):
        load_target("tpu-v9")
    with pytest.raises(ValueError, match="not found.*bitserial"):
        load_target("/nonexistent/chip.yaml")


def test_custom_path(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text(GOOD)
    target = load_target(str(path))
    # "1e12" is a string to PyYAML (no dot); the loader reads it as the number
    assert (target.name, target.peak_macs_per_s, target.skips_zeros) == ("custom", 1e12, False)


@pytest.mark.parametrize(
    "text, named",
    [
        ("name: [unclosed", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        (GOOD + "clock_hz: 1e9\n", r"unknown keys \['clock_hz'\]"),
        (GOOD.replace("kind: bricks", "kind: systolic"), r"kind='systolic'.*bitserial"),
        (GOOD.replace("memory_pj_per_bit: 0.16", "memory_pj_per_bit: -1"), "memory_pj_per_bit=-1 must be a positive"),
        (GOOD.replace("peak_macs_per_s: 1e12", "peak_macs_per_s: fast"), "'fast' is not a number"),
        (GOOD.replace("bandwidth_bits_per_s: 1.0e+11\n", ""), "required keys"),
    ],
)
def test_malformed_files(tmp_path, text, named):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=named):
        load_target(str(path))


def test_target_validates_skips_zeros():
    with pytest.raises(ValueError, match="skips_zeros='yes'"):
        Target(name="t", kind="int8", peak_macs_per_s=1, float_peak_macs_per_s=1, bandwidth_bits_per_s=1,
               memory_pj_per_bit=1, skips_zeros="yes")
