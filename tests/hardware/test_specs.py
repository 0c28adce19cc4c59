"""hardware.specs: derived counts, validation, tie leaders, JSON round trip."""

import pytest

from hardware.specs import LayerSpec, specs_from_json, specs_to_json, tie_leaders


def test_counts():
    depthwise = LayerSpec("dw", "conv", 32, 32, kernel=(3, 3), groups=32, input_hw=(10, 10), output_hw=(8, 8))
    # N = 32 * (32/32) * 3*3 = 288; M = 8*8 * 288 = 18,432
    assert (depthwise.weights, depthwise.macs) == (288, 18_432)
    linear = LayerSpec("fc", "linear", 800, 500)
    assert linear.weights == linear.macs == 400_000
    assert (depthwise.input_activations, depthwise.output_activations) == (32 * 100, 32 * 64)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(kind="lstm"), r"kind='lstm'.*\['conv', 'linear'\]"),
        (dict(out_channels=0), r"out_channels=0"),
        (dict(groups=3), r"groups=3"),
    ],
)
def test_validation_names_the_value(kwargs, named):
    values = dict(name="x", kind="conv", in_channels=4, out_channels=8)
    values.update(kwargs)
    with pytest.raises(ValueError, match=named):
        LayerSpec(**values)


def test_tie_leaders(residual_specs):
    assert tie_leaders(residual_specs) == {"stem": "stem", "block.a": "block.a", "block.b": "stem", "head": "head"}


def test_json_round_trip(lenet_specs):
    assert specs_from_json(specs_to_json(lenet_specs)) == lenet_specs
