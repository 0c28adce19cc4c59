"""A low successive-halving rung evaluates a fixed validation subset sized to its fine-tune
(trainables.policy_trial.rung_val_size / rung_val_subset)."""

import torch

from trainables.policy_trial import MIN_RUNG_VAL, rung_val_size, rung_val_subset


def test_the_subset_shrinks_with_the_rung_but_not_below_the_floor():
    assert rung_val_size(6000, 80, 80) == 6000  # the top rung: the whole split
    assert rung_val_size(6000, 27, 80) == 2025
    assert rung_val_size(6000, 9, 80) == MIN_RUNG_VAL  # 675 would be below the floor
    assert rung_val_size(600, 9, 80) == 600  # a small split is used whole


def test_every_trial_sees_the_same_examples_drawn_across_a_class_sorted_split():
    y = torch.arange(10).repeat_interleave(100)  # a user's split ordered by class
    x = torch.arange(1000, dtype=torch.float32)[:, None]
    first_x, first_y = rung_val_subset(x, y, 300)
    again_x, again_y = rung_val_subset(x.clone(), y.clone(), 300)
    assert torch.equal(first_x, again_x) and torch.equal(first_y, again_y)
    assert len(first_y) == 300 and len(set(first_x[:, 0].tolist())) == 300  # distinct examples
    assert torch.equal(y[first_x[:, 0].long()], first_y)  # pairs kept together
    assert set(first_y.tolist()) == set(range(10))  # not the first three classes
    whole_x, whole_y = rung_val_subset(x, y, 1000)
    assert whole_x is x and whole_y is y
