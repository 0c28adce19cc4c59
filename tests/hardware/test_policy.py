"""hardware.policy: validation messages, YAML/JSON round trips, check_matches."""

import pytest

from hardware.policy import LayerPolicy, Policy


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(weight_bits=9), r"weight_bits=9.*\[2, 3, 4, 5, 6, 7, 8, 32\]"),
        (dict(activation_bits=1), r"activation_bits=1.*valid choices"),
        (dict(weight_bits=True), r"weight_bits=True"),  # a bool is not a bit-width
        (dict(sparsity=1.0), r"sparsity=1.0.*\[0, 1\)"),
        (dict(sparsity=-0.1), r"sparsity=-0.1"),
        (dict(keep_ratio=0.0), r"keep_ratio=0.0.*\(0, 1\]"),
    ],
)
def test_layer_policy_errors_name_the_value(kwargs, named):
    with pytest.raises(ValueError, match=named):
        LayerPolicy(**kwargs)


def test_structure_rules():
    with pytest.raises(ValueError, match="structure='bogus'.*unstructured"):
        Policy.uniform(["a"], structure="bogus")
    with pytest.raises(ValueError, match="keep_ratio=0.5 needs structure='channel'"):
        Policy.uniform(["a"], keep_ratio=0.5)
    with pytest.raises(ValueError, match="more than once.*'a'"):
        Policy((("a", LayerPolicy()), ("a", LayerPolicy())))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    policy = Policy(
        (
            ("conv1", LayerPolicy(keep_ratio=0.5, weight_bits=4, activation_bits=8)),
            ("fc", LayerPolicy(keep_ratio=1.0, weight_bits=32, activation_bits=32)),
        ),
        structure="channel",
    )
    path = tmp_path / f"policy{suffix}"
    policy.save(path)
    assert Policy.load(path) == policy
    assert Policy.load(path).names == ("conv1", "fc")  # order kept


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: {conv1: {weight_bits: 9}}\n")
    with pytest.raises(ValueError, match="bad.yaml.*weight_bits=9"):
        Policy.load(bad)
    with pytest.raises(ValueError, match="not found"):
        Policy.load(tmp_path / "missing.yaml")


def test_check_matches():
    policy = Policy.float(["conv1", "fc"])
    policy.check_matches(["fc", "conv1"])  # order does not matter
    with pytest.raises(ValueError, match=r"missing layers \['conv2'\], unknown layers \['fc'\]"):
        policy.check_matches(["conv1", "conv2"])
