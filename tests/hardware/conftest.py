"""Layer specs built by hand for the hardware tests (no torch)."""

import pytest

from hardware.policy import LayerPolicy, Policy
from hardware.specs import LayerSpec
from hardware.targets import Target


@pytest.fixture
def lenet_specs() -> list[LayerSpec]:
    """LeNet-5 (Caffe variant): 430,500 weights, 2,293,000 MACs.

    conv1 20@5x5 on 1x28x28 -> 24x24: N = 20*1*25 = 500,      M = 576*500 = 288,000
    conv2 50@5x5 on 20x12x12 -> 8x8:  N = 50*20*25 = 25,000,  M = 64*25,000 = 1,600,000
    fc1 800 -> 500 (50 channels of 4x4): N = M = 400,000
    fc2 500 -> 10 (the classes):         N = M = 5,000
    """
    return [
        LayerSpec("conv1", "conv", 1, 20, kernel=(5, 5), input_hw=(28, 28), output_hw=(24, 24), has_bias=True),
        LayerSpec("conv2", "conv", 20, 50, kernel=(5, 5), input_hw=(12, 12), output_hw=(8, 8), has_bias=True,
                  producer="conv1"),
        LayerSpec("fc1", "linear", 800, 500, has_bias=True, producer="conv2", input_channel_multiplier=16),
        LayerSpec("fc2", "linear", 500, 10, has_bias=True, producer="fc1", prunable_outputs=False),
    ]


@pytest.fixture
def residual_specs() -> list[LayerSpec]:
    """A stem and one residual block whose output is added to the stem's (tie group "res"),
    then a classifier on the pooled 16 channels. All convs 3x3 on 8x8, with BatchNorm."""
    conv = dict(kind="conv", kernel=(3, 3), input_hw=(8, 8), output_hw=(8, 8))
    return [
        LayerSpec("stem", in_channels=3, out_channels=16, tie_group="res", norm_channels=16, **conv),
        LayerSpec("block.a", in_channels=16, out_channels=16, producer="stem", norm_channels=16, **conv),
        LayerSpec("block.b", in_channels=16, out_channels=16, producer="block.a", tie_group="res",
                  norm_channels=16, **conv),
        LayerSpec("head", "linear", 16, 10, has_bias=True, producer="block.b", prunable_outputs=False),
    ]


@pytest.fixture
def make_target():
    """Targets with round numbers, so expected latencies are easy to write by hand."""

    def make(kind: str, **overrides) -> Target:
        values = dict(name=f"test-{kind}", kind=kind, peak_macs_per_s=1.6e13, float_peak_macs_per_s=1e10,
                      bandwidth_bits_per_s=2e11, memory_pj_per_bit=20.0, skips_zeros=True)
        values.update(overrides)
        return Target(**values)

    return make


@pytest.fixture
def mixed_policy() -> Policy:
    """Unstructured LeNet-5 policy used across the tests:
    conv1 dense w8a8, conv2 50% w4a4, fc1 90% w2a4, fc2 20% w8a8."""
    return Policy(
        (
            ("conv1", LayerPolicy(sparsity=0.0, weight_bits=8, activation_bits=8)),
            ("conv2", LayerPolicy(sparsity=0.5, weight_bits=4, activation_bits=4)),
            ("fc1", LayerPolicy(sparsity=0.9, weight_bits=2, activation_bits=4)),
            ("fc2", LayerPolicy(sparsity=0.2, weight_bits=8, activation_bits=8)),
        )
    )
