"""The Fisher-weighted sensitivity against loss increases measured by compressing one layer of a
trained model with the real apply_policy (an independent computation of the same quantity)."""

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evo.core.space import SearchSpace
from hardware.policy import FLOAT_BITS, LayerPolicy, Policy
from hardware.profiler import profile_model
from trainables.compress import apply_policy
from trainables.models import create_model
from trainables.sensitivity import measure_sensitivity
from trainables.train import evaluate


def _trained_mlp():
    torch.manual_seed(0)
    model = create_model("mlp", in_channels=1, num_classes=10, image_shape=(1, 8, 8))
    x = torch.randn(1024, 1, 8, 8)
    y = (x[:, 0, :4].sum(dim=(1, 2)) * 2).long().clamp(-5, 4) + 5  # a learnable rule, 10 classes
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(300):
        batch = slice(step % 8 * 128, step % 8 * 128 + 128)
        optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model.eval(), x, y


def _spearman(a, b):
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return float(np.corrcoef(ranks(np.array(a)), ranks(np.array(b)))[0, 1])


def test_fisher_distortion_ranks_single_layer_compressions_like_the_measured_loss_increase():
    model, x, y = _trained_mlp()
    specs = profile_model(model, (1, 8, 8))
    space = SearchSpace(tuple(s.name for s in specs), sparsity_choices=(0.0, 0.5, 0.8),
                        weight_bit_choices=(2, 3, 4, 8), activation_bit_choices=(2, 3, 4, 8))
    tables = measure_sensitivity(model, specs, space, x[:512], y[:512])
    base = evaluate(model, x[:512], y[:512])["loss"]
    names = list(space.layer_names)
    float_layer = LayerPolicy(weight_bits=FLOAT_BITS, activation_bits=FLOAT_BITS, sparsity=0.0)
    predicted, measured = [], []
    for index, name in enumerate(names):
        for p, sparsity in enumerate(space.sparsity_choices):
            for w, bits in enumerate(space.weight_bit_choices):
                if sparsity == 0 and bits == 8:
                    continue  # (almost) no change: both sides ~0, rank noise
                layer = LayerPolicy(weight_bits=bits, activation_bits=FLOAT_BITS, sparsity=sparsity)
                policy = Policy(tuple((n, layer if n == name else float_layer) for n in names))
                compressed = apply_policy(copy.deepcopy(model), policy, specs, x[:512])
                measured.append(evaluate(compressed, x[:512], y[:512])["loss"] - base)
                predicted.append(tables["weight"][index][p][w])
    assert _spearman(predicted, measured) >= 0.8, (predicted, measured)
    for index in range(len(names)):  # fewer bits, more damage; more pruning, more damage
        activation = tables["activation"][index]
        assert activation[0] > activation[1] > activation[2] > activation[3] >= 0
        weight = np.array(tables["weight"][index])
        assert (np.diff(weight[:, -1]) > 0).all() and (np.diff(weight[0]) < 0).all()  # at 8 bits; unpruned


def test_a_frozen_layer_has_the_same_sensitivity_and_stays_frozen():
    """A user's model may freeze layers (requires_grad False): their Fisher is measured all the same."""
    model, x, y = _trained_mlp()
    specs = profile_model(model, (1, 8, 8))
    space = SearchSpace(tuple(s.name for s in specs), sparsity_choices=(0.0, 0.5),
                        weight_bit_choices=(2, 4), activation_bit_choices=(2, 4))
    expected = measure_sensitivity(model, specs, space, x[:128], y[:128])
    frozen = copy.deepcopy(model)
    first = dict(frozen.named_modules())[specs[0].name]
    first.weight.requires_grad_(False)
    assert measure_sensitivity(frozen, specs, space, x[:128], y[:128]) == expected
    assert not first.weight.requires_grad and all(p.grad is None for p in frozen.parameters())


def test_a_layer_the_loss_does_not_reach_is_named():
    model, x, y = _trained_mlp()
    specs = profile_model(model, (1, 8, 8))
    space = SearchSpace(tuple(s.name for s in specs), sparsity_choices=(0.0, 0.5),
                        weight_bit_choices=(2, 4), activation_bit_choices=(2, 4))
    name = specs[0].name
    layer = dict(model.named_modules())[name]
    layer.register_forward_hook(lambda module, args, out: out.detach())  # cut the first layer off the graph
    with pytest.raises(ValueError, match=f"layer '{name}': its weight got no gradient"):
        measure_sensitivity(model, specs, space, x[:64], y[:64])


def test_a_failed_measurement_leaves_generation_0_without_guided_policies():
    """The search goes on (uniform and random genomes) and says why, rather than stopping."""
    from types import SimpleNamespace

    from evo.methods.evolve import guided_policies, run_sensitivity

    model, x, y = _trained_mlp()
    specs = profile_model(model, (1, 8, 8))
    reference = {"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 10, "image_shape": [1, 8, 8]}
    prep = SimpleNamespace(cfg=SimpleNamespace(sensitivity_samples=64, final_fill=False), model_ref=reference,
                           base_state=model.state_dict(), specs=specs,
                           space=SearchSpace(tuple(s.name for s in reversed(specs))),  # not the model's order
                           splits=SimpleNamespace(train_x=x.numpy(), train_y=y.numpy()))
    lines = []
    measured = run_sensitivity(prep, lines.append)
    assert measured is None and guided_policies(prep, measured, lines.append) == []
    assert len(lines) == 1 and lines[0].startswith("sensitivity: could not be measured (ValueError: the space's layers")


def test_generation_0_takes_the_uniform_policies_of_least_measured_distortion():
    """The search hands the measured sensitivity's predicted distortion to generation 0's choice of
    uniform policies (evolve.uniform_policies) and logs which it took; without a sensitivity they are
    spread along the cost axis."""
    from types import SimpleNamespace

    from evo.core.cost_table import make_cost_fn
    from evo.core.initial import least_pruned_uniforms, uniform_picks
    from evo.methods.evolve import run_sensitivity, uniform_name, uniform_policies
    from hardware.targets import load_target

    model, x, y = _trained_mlp()
    specs = profile_model(model, (1, 8, 8))
    space = SearchSpace(tuple(s.name for s in specs))
    cost_fn = make_cost_fn(space, specs, load_target("bitserial"), "bops")
    limit = max(cost_fn(g) for g in space.uniform_genomes()) / 64  # 21 least-pruned uniform policies fit
    reference = {"kind": "zoo", "name": "mlp", "in_channels": 1, "num_classes": 10, "image_shape": [1, 8, 8]}
    prep = SimpleNamespace(cfg=SimpleNamespace(sensitivity_samples=256, final_fill=False, population=10, rungs=1,
                                               rung_factor=3),
                           model_ref=reference, base_state=model.state_dict(), specs=specs, space=space,
                           cost_fn=cost_fn, limit=limit, splits=SimpleNamespace(train_x=x.numpy(), train_y=y.numpy()))
    lines = []
    sensitivity = run_sensitivity(prep, lines.append)
    picks = uniform_policies(prep, sensitivity, lines.append)
    uniforms = least_pruned_uniforms(space, cost_fn, limit)
    distortion = sorted(sensitivity.distortion(g) for g in uniforms)
    assert len(uniforms) > 2 and sorted(sensitivity.distortion(g) for g in picks) == distortion[:2]
    assert distortion[1] < distortion[-1]  # the measurement separates them
    assert lines[-1] == (f"uniform policies for generation 0: 2 of the {len(uniforms)} least-pruned within the budget, "
                         f"by the least predicted distortion: {', '.join(uniform_name(space, g) for g in picks)}")
    assert re.fullmatch(r"s[\d.]+ w\d+a\d+", uniform_name(space, picks[0]))
    spread = uniform_policies(prep, None, lines.append)
    assert spread == uniform_picks(uniforms, cost_fn, 2) != picks
    assert "spread along the cost axis (no sensitivity)" in lines[-1]
