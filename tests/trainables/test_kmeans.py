"""The k-means codebook with zero, the uniform grid, and the straight-through fine-tune transform."""

import pytest
import torch

from trainables.kmeans import (CodebookWeight, check_quantizer, fit_codebook, quantize, snap_to_codebook,
                               uniform_quantize)
from trainables.quantize import WeightTransform


def test_lloyd_finds_four_clusters_exactly():
    # Sorted: -3.1 -2.9 -1.1 -0.9 0.9 1.1 2.9 3.1; quantile start picks ranks 1, 3, 5, 7
    # (-2.9, -0.9, 1.1, 3.1); one Lloyd step moves every level to its pair's mean.
    data = torch.tensor([2.9, -1.1, 0.9, -3.1, 3.1, -0.9, 1.1, -2.9, 0.0, 0.0])
    codebook = fit_codebook(data, 2)
    assert codebook.tolist() == pytest.approx([-3.0, -1.0, 0.0, 1.0, 3.0])
    assert (codebook == 0).sum() == 1
    assert snap_to_codebook(data, codebook).tolist() == pytest.approx([3, -1, 1, -3, 3, -1, 1, -3, 0, 0])


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_masked_weights_take_at_most_two_to_the_bits_plus_zero_values(bits):
    generator = torch.Generator().manual_seed(bits)
    weight = torch.randn(64, 300, generator=generator)
    mask = torch.rand(64, 300, generator=generator) < 0.3
    quantized = quantize(weight * mask, bits, "kmeans")
    values = quantized.unique()
    assert len(values) <= 2**bits + 1
    assert (values == 0).sum() == 1  # an exact zero level
    assert torch.all(quantized[~mask] == 0)  # pruned weights stay exactly zero
    assert torch.count_nonzero(quantized) <= int(mask.sum())


@pytest.mark.parametrize("seed", range(5))
def test_distortion_decreases_with_bits(seed):
    generator = torch.Generator().manual_seed(seed)
    # Laplace-like weights (heavy tails), as trained layers have
    values = torch.randn(20_000, generator=generator) * torch.rand(20_000, generator=generator)
    distortions = [float((values - quantize(values, bits, "kmeans")).pow(2).sum()) for bits in range(2, 9)]
    assert all(later < earlier for earlier, later in zip(distortions, distortions[1:]))


def test_fewer_values_than_levels_and_all_zero_inputs():
    data = torch.tensor([0.5, 0.5, -0.25, 0.0])
    codebook = fit_codebook(data, 3)
    assert codebook.tolist() == [-0.25, 0.0, 0.5]
    assert torch.equal(snap_to_codebook(data, codebook), data)
    assert fit_codebook(torch.zeros(5), 4).tolist() == [0.0]
    assert torch.equal(quantize(torch.zeros(2, 3), 4, "kmeans"), torch.zeros(2, 3))


def test_uniform_is_the_evolved_policies_quantizer():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 3, 5, 5, generator=generator)
    expected = WeightTransform(weight, None, 4)(weight)
    assert torch.equal(uniform_quantize(weight, 4), expected)
    levels_per_channel = [len(row.unique()) for row in quantize(weight, 4, "uniform").flatten(1)]
    assert max(levels_per_channel) <= 2**4  # at <= 4 bits the full signed range: -8..7


def test_codebook_weight_is_exact_forward_and_straight_through_backward():
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(10, 20, generator=generator, requires_grad=True)
    mask = (torch.rand(10, 20, generator=generator) < 0.5).float()
    transform = CodebookWeight(weight.detach(), mask, 2)
    out = transform(weight)
    assert torch.equal(out, snap_to_codebook(weight.detach() * mask, transform.codebook))
    assert len(out.unique()) <= 5
    upstream = torch.randn(10, 20, generator=generator)
    out.backward(upstream)
    assert torch.allclose(weight.grad, upstream * mask)  # straight through, blocked where pruned
    before = transform.codebook.clone()
    transform.refit(weight.detach() * 3)
    assert torch.allclose(transform.codebook, fit_codebook(weight.detach() * 3 * mask, 2))
    assert not torch.equal(before, transform.codebook)


def test_unknown_quantizer_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match=r"quantizer='lloyd'.*\['kmeans', 'uniform'\]"):
        check_quantizer("lloyd")
    with pytest.raises(ValueError, match="not a valid bit-width"):
        fit_codebook(torch.ones(3), 1)
