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


def _depthwise_specs() -> list[LayerSpec]:
    """stem -> pointwise expand -> depthwise (follows expand) -> project, added to stem -> head."""
    conv = dict(kind="conv", input_hw=(8, 8), output_hw=(8, 8))
    return [
        LayerSpec("stem", in_channels=3, out_channels=8, kernel=(3, 3), tie_group="res", **conv),
        LayerSpec("expand", in_channels=8, out_channels=16, kernel=(1, 1), producer="stem", **conv),
        LayerSpec("dw", in_channels=16, out_channels=16, kernel=(3, 3), groups=16, producer="expand", **conv),
        LayerSpec("project", in_channels=16, out_channels=8, kernel=(1, 1), producer="dw", tie_group="res", **conv),
        LayerSpec("head", "linear", 8, 10, has_bias=True, producer="project", prunable_outputs=False),
    ]


@pytest.mark.parametrize("which", ["residual", "depthwise"])
def test_keep_ratio_setters_are_exactly_the_layers_whose_keep_ratio_changes_the_cost(residual_specs, which):
    """Real cost functions: moving one layer's keep ratio changes some cost iff the layer is a setter."""
    from hardware.cost import total_costs
    from hardware.policy import Policy
    from hardware.specs import keep_ratio_setters
    from hardware.targets import load_target

    specs = residual_specs if which == "residual" else _depthwise_specs()
    names = [s.name for s in specs]
    setters = keep_ratio_setters(specs)
    assert setters == ({"stem", "block.a"} if which == "residual" else {"stem", "expand"})
    base = Policy.uniform(names, weight_bits=4, activation_bits=4, keep_ratio=1.0, structure="channel")
    target = load_target("bitfusion")
    before = total_costs(specs, base, target)
    for name in names:
        moved = Policy(tuple((n, lp if n != name else type(lp)(weight_bits=4, activation_bits=4, keep_ratio=0.5))
                             for n, lp in base.layers), structure="channel")
        after = total_costs(specs, moved, target)
        changed = any(after[key] != before[key] for key in ("bops", "size_bits_honest", "energy_pj", "latency_s"))
        assert changed == (name in setters), name
