"""The Fisher-weighted sensitivity against loss increases measured by compressing one layer of a
trained model with the real apply_policy (an independent computation of the same quantity)."""

import copy

import numpy as np
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
