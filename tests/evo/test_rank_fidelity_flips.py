"""benchmarks/rank_fidelity.py's flip diagnostic: the seed noise that disagreements on a finite
validation split imply, checked by hand and against a simulation of equally good models."""

import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

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


def test_pooled_noise_weights_variances_by_degrees_of_freedom_with_a_chi_square_interval():
    from rank_fidelity import chi2_interval, pooled_noise

    # variances 1 (3 seeds, 2 dof) and 4 (2 seeds, 1 dof): pooled (2 * 1 + 1 * 4) / 3 = 2
    std, dof = pooled_noise([[0.0, 1.0, 2.0], [0.0, 2.0 * math.sqrt(2.0)]])
    assert dof == 3 and std == pytest.approx(math.sqrt(2.0))
    # chi-square quantiles with 3 degrees of freedom from a printed table: 0.216 (2.5 %), 9.348 (97.5 %)
    low, high = chi2_interval(std, dof)
    assert low == pytest.approx(math.sqrt(3 * 2.0 / 9.348), rel=1e-3)
    assert high == pytest.approx(math.sqrt(3 * 2.0 / 0.216), rel=2e-3)
    # one policy of 10 seeds: its own sample std, 9 dof (table: 2.700, 19.023)
    seeds = [0.90, 0.91, 0.89, 0.90, 0.92, 0.88, 0.90, 0.91, 0.89, 0.90]
    std, dof = pooled_noise([seeds])
    assert dof == 9 and std == pytest.approx(statistics.stdev(seeds))
    assert chi2_interval(std, dof) == (pytest.approx(std * math.sqrt(9 / 19.023), rel=1e-3),
                                       pytest.approx(std * math.sqrt(9 / 2.700), rel=1e-3))


@pytest.mark.parametrize("argv, needle", [
    (["--noise-top", "3"], "give --run too"),
    (["--run", "somewhere", "--noise-top", "0"], "--noise-top=0 must be >= 1"),
    (["--run", "somewhere", "--noise-top", "2", "--noise-genome", "1,2"], "either --noise-top or --noise-genome"),
    (["--noise-genome", "1,x,3"], "'1,x,3' must be comma-separated integers"),
    (["--noise-genome", "1,2", "--noise-genome", ""], "'' must be comma-separated integers"),
    (["--noise-genome", "1,,2"], "'1,,2' must be comma-separated integers"),
])
def test_noise_policy_options_are_checked(argv, needle, capsys):
    from rank_fidelity import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    assert needle in capsys.readouterr().err


def test_noise_genomes_are_checked_against_the_space_and_default_to_the_median_cost_one():
    from evo.core.space import SearchSpace
    from rank_fidelity import noise_genomes, parse_args

    space = SearchSpace(layer_names=("conv1", "fc"))
    drawn = [tuple([i] * space.n_genes) for i in range(5)]
    assert noise_genomes(parse_args([]), space, drawn) == [drawn[2]]
    chosen = parse_args(["--noise-genome", ",".join(["1"] * space.n_genes), "--noise-genome",
                         ",".join(["0"] * space.n_genes)])
    assert noise_genomes(chosen, space, drawn) == [tuple([1] * space.n_genes), tuple([0] * space.n_genes)]
    with pytest.raises(SystemExit, match="genes; this space needs"):
        noise_genomes(parse_args(["--noise-genome", "1,2"]), space, drawn)
    with pytest.raises(SystemExit, match="valid indices"):
        noise_genomes(SimpleNamespace(noise_genome=[tuple([99] * space.n_genes)], noise_top=None), space, drawn)


def test_noise_top_ranks_only_the_top_rungs_successful_screens():
    import pandas as pd

    import rank_fidelity
    from evo.core.genome import genome_key
    from evo.core.space import SearchSpace

    space = SearchSpace(layer_names=("conv1", "fc"))
    genomes = [tuple([i] * space.n_genes) for i in range(4)]
    rows = [  # (genome, phase, status, steps, accuracy)
        (genomes[0], "search", "ok", 9, 0.99),       # a low rung's accuracy: not comparable
        (genomes[1], "search", "ok", 27, 0.80),
        (genomes[1], "search", "ok", 27, 0.81),      # screened twice: one policy
        (genomes[2], "search", "ok", 27, 0.70),
        (genomes[3], "search", "failed", 27, 0.95),  # a failed trial's figure is not a screen
        (genomes[3], "final", "ok", 500, 0.97),      # nor is a final one
        (genomes[0], "search", "ok", 27, 0.60),
    ]
    trials = pd.DataFrame([{"genome_key": genome_key(g), "phase": phase, "status": status, "steps": steps,
                            "accuracy": acc} for g, phase, status, steps, acc in rows])
    assert rank_fidelity.top_screened(trials, 2) == [genome_key(genomes[1]), genome_key(genomes[2])]
    top = rank_fidelity.top_screened(trials, 3)
    assert top == [genome_key(g) for g in (genomes[1], genomes[2], genomes[0])]
    args = SimpleNamespace(noise_genome=[], noise_top=3, run="a-run")
    assert rank_fidelity.noise_genomes(args, space, genomes, top) == [genomes[1], genomes[2], genomes[0]]
    with pytest.raises(ValueError, match="3 distinct policies"):
        rank_fidelity.top_screened(trials, 4)


def test_part_a_measures_chosen_policies_on_seeds_other_than_the_runs_and_pools_them(monkeypatch, capsys):
    """main's part (a) on two chosen policies, with setup and the fine-tune replaced by stand-ins
    (per-seed accuracies known in advance): the run's seed is skipped, each policy's std and the
    pooled one are printed with both intervals."""
    import rank_fidelity
    from evo.core.space import SearchSpace

    space = SearchSpace(layer_names=("conv1", "fc"))
    a, b = tuple([0] * space.n_genes), tuple([1] * space.n_genes)
    n = 400
    right = {a: {1: 300, 2: 310, 3: 290, 4: 320}, b: {1: 200, 2: 200, 3: 220, 4: 180}}  # per seed, of n
    calls = []

    def correct(prepared, genome, seed, steps):
        calls.append((genome, seed, steps))
        return torch.arange(n) < right[genome][seed]

    base = SimpleNamespace(val_accuracy=0.9, state_dict={})
    monkeypatch.setattr(rank_fidelity, "setup", lambda args: (None, base, None, space, lambda g: 1.0, [a, b], None))
    monkeypatch.setattr(rank_fidelity, "val_correct", correct)
    argv = ["--noise-only", "--seeds", "4", "--seed", "0", "--screen-steps", "7",
            "--noise-genome", ",".join(map(str, a)), "--noise-genome", ",".join(map(str, b))]
    assert rank_fidelity.main(argv) == 0
    assert calls == [(g, seed, 7) for g in (a, b) for seed in (1, 2, 3, 4)]  # seed 0 (the run's) skipped
    out = capsys.readouterr().out
    std_a = statistics.stdev(k / n for k in right[a].values())
    std_b = statistics.stdev(k / n for k in right[b].values())
    assert "except" not in out and "fine-tune seeds 1..4 at 7 steps" in out
    assert f"std {100 * std_a:.3f} points" in out and f"std {100 * std_b:.3f} points" in out
    pooled = math.sqrt((std_a ** 2 + std_b ** 2) / 2)
    assert f"(a) noise over 2 policies (pooled): std {100 * pooled:.3f} points" in out
    assert "if their seed noise were independent (6 degrees of freedom)" in out and "all alike (3)" in out
    # paired: the differences a - b over seeds 1..4 are 100, 110, 70, 140 (of n)
    paired = statistics.stdev(d / n for d in (100, 110, 70, 140)) / math.sqrt(2)
    assert f"differ by a seed noise of {100 * paired:.3f} points per policy" in out and "over the 1 pairs" in out


def test_paired_noise_is_the_pooled_noise_for_independent_seeds_and_zero_for_seeds_that_move_all_alike():
    from rank_fidelity import paired_noise, pooled_noise

    # by hand: differences (a - b) = [1, -1, 1, -1] (variance 4/3), (a - c) = [0, 0, 0, 0],
    # (b - c) = [-1, 1, -1, 1] (variance 4/3): mean 8/9, halved 4/9
    a, b, c = [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]
    assert paired_noise([a, b, c]) == pytest.approx(2.0 / 3.0)
    # a seed that shifts every policy alike (a shared offset) cancels in the pairs, not in the pool
    shift = [0.3, -0.2, 0.5, -0.6, 0.1]
    own = [[0.01, -0.02, 0.0, 0.02, -0.01], [-0.01, 0.0, 0.02, -0.02, 0.01]]
    moved = [[s + o for s, o in zip(shift, own_noise)] for own_noise in own]
    assert pooled_noise(moved)[0] > 0.3
    assert paired_noise(moved) == pytest.approx(paired_noise(own)) and paired_noise(moved) < 0.03
    # independent seed noise: the paired figure estimates the same std as the pooled one
    generator = torch.Generator().manual_seed(0)
    independent = (0.02 * torch.randn(6, 2000, generator=generator)).tolist()
    assert paired_noise(independent) == pytest.approx(pooled_noise(independent)[0], rel=0.05)
    with pytest.raises(ValueError, match="two or more policies measured on the same seeds"):
        paired_noise([[0.1, 0.2], [0.1, 0.2, 0.3]])
