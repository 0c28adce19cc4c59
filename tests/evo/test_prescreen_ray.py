"""`surrogate` on real local Ray (smoke preset: digits + MLP): the search measures the sensitivity,
fits the pre-screen on its own screened trials after each generation, logs the fit and trains the
same number of trials as without it."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from cli_runner import smoke_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_search_with_the_surrogate_pre_screens_its_later_generations(tmp_path):
    result, run = smoke_search(tmp_path, "surrogate", {"generations": 3, "final_top": 1, "surrogate": True})
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "surrogate pre-screen: each later generation breeds 3x the children it trains" in out, out[-3000:]
    fits = re.findall(r"gen +(\d+) \|.*\| surrogate Spearman (-?[\d.]+) \(activation weight ([\d.]+)\): (.*)", out)
    assert [int(g) for g, *_ in fits] == [0, 1], out[-3000:]  # the last generation breeds nothing
    state = json.loads((run / "search_state.json").read_text())["population"]
    assert state["surrogate"] is not None and len(state["surrogate"]["weight"]) == len(state["space"]["layer_names"])
    stats = state["generation_stats"]
    for (generation, rho, alpha, use), row in zip(fits, stats):
        assert row["surrogate_spearman"] == pytest.approx(float(rho), abs=0.006)
        assert row["surrogate_alpha"] == float(alpha)
        assert use.startswith("pre-screens") == row["surrogate_used"]
    trials = pd.read_parquet(run / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert search.generation.nunique() == 3 and (search.groupby("generation").size() == state["population_size"]).all()
