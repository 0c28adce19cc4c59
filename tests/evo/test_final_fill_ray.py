"""`final_fill` on real local Ray (smoke preset: digits + MLP): the front policy chosen for the
final fine-tune is grown to use the budget before it is fine-tuned and tested, and the final
table and pareto.parquet say so."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_runner import smoke_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_final_policy_is_filled_to_the_budget(tmp_path):
    result, run = smoke_search(tmp_path, "fill", {"generations": 2, "final_top": 1, "final_fill": True})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = pd.read_parquet(run / "trials.parquet")
    search = trials[(trials.phase == "search") & (trials.status == "ok")]
    pareto = pd.read_parquet(run / "pareto.parquet")
    front = pareto[pareto.label.str.startswith("pareto")]
    assert front.genome_key.nunique() == 1 and len(front) == 1  # final_top 1, final_seeds 1 (smoke)
    row = front.iloc[0]
    # the screened policy it grew from: the most accurate one on the screened front
    chosen = search.sort_values(["accuracy", "cost"], ascending=[False, True]).iloc[0]
    assert "filled to the budget" in result.stdout, result.stdout[-3000:]
    assert row.label.startswith("pareto, filled") and row.genome_key not in set(search.genome_key)
    assert chosen.cost < row.cost <= row["limit"] * (1 + 1e-9) and row.violation == 0
    # grown only: no layer is more pruned or has fewer bits than in the screened policy
    grown, screened = json.loads(row.policy)["layers"], json.loads(chosen.policy)["layers"]
    for name, layer in grown.items():
        assert layer["sparsity"] <= screened[name]["sparsity"]
        assert layer["weight_bits"] >= screened[name]["weight_bits"]
        assert layer["activation_bits"] >= screened[name]["activation_bits"]
    assert row.test_accuracy > 0.8 and row.steps == 200
    assert "pareto, filled" in result.stdout
