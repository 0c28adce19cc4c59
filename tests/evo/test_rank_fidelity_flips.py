"""benchmarks/rank_fidelity.py's flip diagnostic: the seed noise that disagreements on a finite
validation split imply, checked by hand and against a simulation of equally good models."""

import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from rank_fidelity import flip_noise  # noqa: E402


def test_flip_rate_and_implied_std_by_hand():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    c = torch.tensor([True, True, False, False])
    q, implied = flip_noise([a, b, c])
    assert q == pytest.approx((0.5 + 0.0 + 0.5) / 3)  # pairs (a, b), (a, c), (b, c)
    assert implied == pytest.approx(math.sqrt(q / 8))


def test_implied_std_matches_simulated_models_that_differ_only_by_flips():
    # 100 "seeds" of one model: each image is hard (always wrong), easy (always right) or coin-like
    # (right with probability 0.5, independently per seed), so every seed has the same expected
    # accuracy and their spread comes from the flips alone
    generator = torch.Generator().manual_seed(0)
    n = 6000
    kind = torch.randint(0, 10, (n,), generator=generator)  # 0: coin, 1: hard, else easy
    correct = []
    for _ in range(100):
        coin = torch.rand(n, generator=generator) < 0.5
        correct.append(torch.where(kind == 0, coin, kind != 1))
    q, implied = flip_noise(correct)
    observed = statistics.stdev(c.double().mean().item() for c in correct)
    assert q == pytest.approx(0.1 * 0.5, rel=0.1)  # a coin image flips between two seeds half the time
    assert observed == pytest.approx(implied, rel=0.2)
