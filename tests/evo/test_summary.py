"""The final table's last line compares the evolved and the uniform policy each chosen by
validation accuracy; the test split only reports them."""

import json
from types import SimpleNamespace

from evo.core.space import SearchSpace
from evo.runs.summary import describe_policy, format_final_table

POLICY = json.dumps({"structure": "unstructured", "layers": {"fc": {"sparsity": 0.5, "keep_ratio": 1.0,
                                                                   "weight_bits": 4, "activation_bits": 4}}})


def row(label, val, test):
    return {"label": label, "status": "ok", "accuracy": val, "test_accuracy": test, "bops_vs_fp32": 100.0,
            "bops_vs_int8": 6.0, "cost": 1.0, "limit": 2.0, "size_bits": 8192, "energy_pj": 1e6, "latency_s": 1e-6,
            "policy": POLICY}


PREP = SimpleNamespace(budget=SimpleNamespace(metric="bops"), cfg=SimpleNamespace(final_steps=500),
                       base_test_accuracy=0.9, space=SearchSpace(("fc",)))


def test_the_gap_line_chooses_by_validation_not_test():
    rows = [row("pareto", 0.88, 0.80), row("pareto", 0.85, 0.95), row("best uniform", 0.86, 0.84)]
    last = format_final_table(rows, PREP, versus_uniform=True).splitlines()[-1]
    # the evolved policy with the best VALIDATION accuracy (test 0.80), not the best test one (0.95)
    assert last.endswith("-4.00 points of test accuracy"), last


def test_a_policy_both_on_the_front_and_best_uniform_is_compared_with_itself():
    rows = [row("pareto, best uniform", 0.9, 0.88), row("pareto", 0.85, 0.86)]
    last = format_final_table(rows, PREP, versus_uniform=True).splitlines()[-1]
    assert "+0.00 points" in last and "the same policy" in last


def test_baselines_print_no_comparison_line():
    table = format_final_table([row("pareto", 0.9, 0.88)], PREP)
    assert "best evolved" not in table and "no uniform" not in table


def test_a_keep_ratio_that_is_never_applied_is_not_printed():
    policy = json.dumps({"structure": "channel", "layers": {
        "conv": {"sparsity": 0.0, "keep_ratio": 0.5, "weight_bits": 4, "activation_bits": 4},
        "fc": {"sparsity": 0.0, "keep_ratio": 1.0, "weight_bits": 8, "activation_bits": 6}}})
    assert describe_policy(policy, ("fc",)) == "conv r0.5 w4a4 | fc w8a6"
    prep = SimpleNamespace(**{**vars(PREP), "space": SearchSpace(("conv", "fc"), structure="channel",
                                                                 fixed_pruning=("fc",))})
    assert format_final_table([{**row("pareto", 0.9, 0.88), "policy": policy}], prep).endswith("conv r0.5 w4a4 | fc w8a6")


def test_final_policies_are_averaged_over_their_seeds_and_chosen_by_mean_validation():
    def seeded(label, key, repeat, val, test):
        return {**row(label, val, test), "genome_key": key, "repeat": repeat}

    rows = [seeded("pareto", "a", 0, 0.91, 0.80), seeded("pareto", "a", 1, 0.85, 0.82),   # mean val 0.88
            seeded("pareto", "b", 0, 0.89, 0.90), seeded("pareto", "b", 1, 0.89, 0.92),   # mean val 0.89
            seeded("best uniform", "u", 0, 0.87, 0.86), seeded("best uniform", "u", 1, 0.87, 0.88)]
    table = format_final_table(rows, PREP, versus_uniform=True).splitlines()
    assert "test acc (mean ± std, 2 seeds)" in table[1]
    assert sum(line.startswith("pareto") for line in table) == 2  # one line per policy, not per seed
    assert any(line.startswith("pareto") and "0.9100 ± 0.0141" in line for line in table)  # b
    # b (best MEAN validation, 0.89) against u: 0.91 - 0.87 = +4.00; std 1.41 + 1.41 < 4.00
    assert table[-1].endswith("+4.00 points of mean test accuracy (beyond the seed spread: std 1.41 + 1.41 points)")
    failed = {**seeded("pareto", "b", 1, 0.0, 0.0), "status": "failed"}
    from evo.runs.summary import average_repeats

    averaged = average_repeats([rows[2], failed])
    assert averaged[0]["repeats"] == 1 and averaged[0]["test_accuracy"] == 0.90


def test_best_final_takes_the_best_mean_validation_within_the_budget():
    """What evo.search returns as ``best`` and `evo export` ships: not the single best seed's row."""
    from evo.runs.summary import best_final

    def seeded(key, repeat, val, test, violation=0.0):
        return {**row("pareto", val, test), "genome_key": key, "repeat": repeat, "violation": violation}

    rows = [seeded("a", 0, 0.92, 0.80), seeded("a", 1, 0.84, 0.82),    # best single row, mean val 0.88
            seeded("b", 0, 0.90, 0.90), seeded("b", 1, 0.89, 0.92),    # mean val 0.895
            seeded("c", 0, 0.99, 0.99, violation=0.1), seeded("c", 1, 0.99, 0.99, violation=0.1)]  # over budget
    best = best_final(rows)
    assert best["genome_key"] == "b" and best["repeats"] == 2 and best["repeat"] == 0
    assert abs(best["accuracy"] - 0.895) < 1e-12 and abs(best["test_accuracy"] - 0.91) < 1e-12
    assert best_final(rows[4:]) is None and best_final([]) is None


def test_best_final_breaks_a_validation_tie_by_the_cheaper_policy_in_either_order():
    """`evo compare` and `evo export` choose with this one helper: a tie on mean validation
    accuracy goes to the cheaper policy, whichever came first."""
    from evo.runs.summary import best_final

    dear = {**row("pareto", 0.90, 0.95), "genome_key": "dear", "repeat": 0, "violation": 0.0, "cost": 2.0}
    cheap = {**row("pareto", 0.90, 0.85), "genome_key": "cheap", "repeat": 0, "violation": 0.0, "cost": 1.0}
    unpriced = {**row("pareto", 0.90, 0.99), "genome_key": "unpriced", "repeat": 0, "violation": 0.0, "cost": None}
    assert best_final([dear, cheap])["genome_key"] == "cheap"
    assert best_final([cheap, dear, unpriced])["genome_key"] == "cheap"
    assert best_final([unpriced, {**dear, "accuracy": 0.91}])["genome_key"] == "dear"


def test_the_gap_line_breaks_a_validation_tie_as_best_final_does():
    """The final table's evolved policy is the one `evo export` ships: on a tie, the cheaper."""
    from evo.runs.summary import best_final

    rows = [{**row("pareto", 0.88, 0.80), "genome_key": "dear", "cost": 1.5},
            {**row("pareto", 0.88, 0.90), "genome_key": "cheap", "cost": 1.0},
            {**row("best uniform", 0.86, 0.84), "genome_key": "u"}]
    last = format_final_table(rows, PREP, versus_uniform=True).splitlines()[-1]
    assert best_final(rows)["genome_key"] == "cheap"
    assert last.endswith("+6.00 points of test accuracy"), last  # cheap's 0.90 against 0.84


def test_the_uniform_reference_is_its_policy_of_best_mean_validation_not_the_first_or_best_test():
    def seeded(label, key, repeat, val, test):
        return {**row(label, val, test), "genome_key": key, "repeat": repeat}

    rows = [seeded("pareto", "a", 0, 0.90, 0.89), seeded("pareto", "a", 1, 0.90, 0.89),
            # the screen's pick (first): best test, worse mean validation
            seeded("uniform reference", "u1", 0, 0.88, 0.95), seeded("uniform reference", "u1", 1, 0.86, 0.95),
            seeded("uniform reference", "u2", 0, 0.88, 0.84), seeded("uniform reference", "u2", 1, 0.88, 0.86)]
    table = format_final_table(rows, PREP, versus_uniform=True).splitlines()
    assert sum(line.startswith("uniform reference") for line in table) == 2
    assert table[-1].startswith("best evolved policy vs best uniform policy") and "+4.00 points" in table[-1], table[-1]
    # an older run's single "best uniform" row and a reference that is also on the front still count
    from evo.runs.summary import average_repeats, best_uniform_row, is_reference_only

    older = [row("best uniform", 0.86, 0.84), row("pareto", 0.9, 0.9)]
    assert best_uniform_row(average_repeats(older))["accuracy"] == 0.86
    both = [seeded("pareto, uniform reference", "p", 0, 0.9, 0.9), seeded("uniform reference", "u", 0, 0.8, 0.8)]
    assert best_uniform_row(average_repeats(both))["genome_key"] == "p"
    assert [is_reference_only(x) for x in ("uniform reference", "best uniform", "pareto, uniform reference",
                                           "pareto", None)] == [True, True, False, False, False]
