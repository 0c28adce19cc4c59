"""`evo search` with successive-halving rungs on real local Ray (smoke preset: digits + MLP):
every rung is a row with its steps, only the top rung is ranked, and --resume after a kill
between rungs trains nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
from cli_runner import EVO, run_evo
from trainings import trainings

from trainables.policy_trial import rung_val_size

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# smoke: population 8, fine_tune_steps 40; 2 rungs of factor 3: 12 policies at 13 steps, the best 4 at 40
RUNG_ARGS = ["--preset", "smoke", "--generations", "2", "--rungs", "2", "--rung-factor", "3"]


@pytest.fixture(scope="module")
def rung_run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    result = run_evo(["search", *RUNG_ARGS, "--storage", str(storage), "--name", "rungs"], cwd=storage)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, storage / "rungs"


def test_every_rung_is_a_row_and_only_the_top_rung_is_ranked(rung_run):
    result, run = rung_run
    assert "successive halving: 12 policies per generation fine-tuned 13 steps" in result.stdout
    trials = pd.read_parquet(run / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert set(zip(search.rung, search.steps)) == {(0, 13), (1, 40)}
    # the top rung evaluates the whole validation split, rung 0 a subset sized to its 13 steps
    ok_rows = search[search.status == "ok"]
    whole = int(ok_rows[ok_rows.rung == 1].val_examples.iloc[0])
    assert (ok_rows[ok_rows.rung == 1].val_examples == whole).all()
    assert (ok_rows[ok_rows.rung == 0].val_examples == rung_val_size(whole, 13, 40)).all()
    for generation in (0, 1):
        rows = search[search.generation == generation]
        low, top = rows[rows.rung == 0], rows[rows.rung == 1]
        assert len(low) == 12 and len(top) == 4, (generation, len(low), len(top))
        assert set(top.genome_key) <= set(low.genome_key)  # promoted from this generation's rung 0
        ok = low[low.status == "ok"]  # the most accurate short fine-tune is on the first front: promoted
        assert set(ok[ok.accuracy == ok.accuracy.max()].genome_key) & set(top.genome_key)
    # equal compute: within 10 % of a search without rungs (8 policies x 40 steps per generation)
    assert abs(search.steps.sum() / (2 * 8 * 40) - 1) <= 0.1
    # each (genome, rung) trained once, as the trials' own log counts
    trained = trainings(run, by_rung=True)
    assert max(n for key, n in trained.items() if key[0] == "search") == 1

    top = search[(search.rung == 1) & (search.status == "ok")]
    gens = pd.read_parquet(run / "generations.parquet")
    assert list(gens.trials) == [16, 16] and list(gens.top_rung_trials) == [4, 4]
    for row in gens.itertuples():
        feasible = top[(top.generation <= row.generation) & (top.violation == 0)]
        assert row.best_feasible_accuracy == pytest.approx(feasible.accuracy.max())
    # the final phase fine-tunes top-rung policies (and the uniform reference, screened at 40 steps)
    pareto = pd.read_parquet(run / "pareto.parquet")
    uniform = trials[trials.phase == "uniform"]
    for key, labels in zip(pareto.genome_key, pareto.label):
        assert key in set(top.genome_key) or ("uniform reference" in labels and key in set(uniform.genome_key))
    assert (uniform.steps == 40).all()


def test_resume_after_a_kill_between_rungs_trains_nothing_twice(tmp_path, rung_run):
    args = ["search", *RUNG_ARGS, "--storage", str(tmp_path), "--name", "killed"]
    proc = subprocess.Popen(EVO + args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    run, deadline = tmp_path / "killed", time.time() + 300
    log = run / "search_log.jsonl"
    while not (log.exists() and '"rung": 1' in log.read_text()):  # rung 0 of generation 0 told, rung 1 begun
        assert proc.poll() is None and time.time() < deadline, "no rung-1 result was logged"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    result = run_evo(args + ["--resume"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming:" in result.stdout
    trained = trainings(run, by_rung=True)
    assert max(n for key, n in trained.items() if key[0] == "search") == 1
    search = pd.read_parquet(run / "trials.parquet").query("phase == 'search'")
    assert not search.duplicated(["genome_key", "rung"]).any()
    reference = pd.read_parquet(rung_run[1] / "trials.parquet").query("phase == 'search'")
    assert set(zip(search.genome_key, search.rung)) == set(zip(reference.genome_key, reference.rung))
