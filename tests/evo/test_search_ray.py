"""End-to-end `evo search` on real local Ray with the smoke preset (digits + MLP), and
`--resume` after the driver is killed mid-search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
from cli_runner import EVO, run_evo
import pytest
import yaml
from trainings import reports, trainings

pytestmark = [pytest.mark.ray, pytest.mark.slow]



@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    result = run_evo(["search", "--preset", "smoke", "--storage", str(storage), "--name", "e2e"], cwd=storage)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, storage / "e2e"


def test_smoke_search_end_to_end(uninterrupted):
    result, run = uninterrupted
    out = result.stdout
    # one progress line per generation, then the final table
    assert sum(line.startswith("gen ") for line in out.splitlines()) == 3, out
    assert "best uniform" in out and "test acc" in out

    config = yaml.safe_load((run / "run.yaml").read_text())
    assert config["config"]["dataset"] == "digits" and config["versions"]["ray"]
    trials = pd.read_parquet(run / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert (search.method == "evo").all()
    assert len(search) >= 8  # at least the first generation
    assert search.genome_key.is_unique, "a genome was trained twice"
    # counted in the trial folders, where trainings happen: each search genome trained exactly once
    trained = trainings(run)
    assert {key for (phase, key), n in trained.items() if phase == "search"} == set(search.genome_key)
    assert max(n for (phase, _), n in trained.items() if phase == "search") == 1
    # the trials' own log agrees with Tune's record of this (uninterrupted) run
    tune_reports = [r["config"].get("item", r["config"]) for r in reports(run)]
    assert sum(n for (phase, _), n in trained.items() if phase == "search") == \
        sum(item["phase"] == "search" for item in tune_reports)
    # the test split is read only by the final trials, never by a screening one
    assert trials[trials.phase != "final"].test_accuracy.isna().all()
    assert all("test_accuracy" not in r for r in reports(run) if r["config"].get("item", r["config"])["phase"] != "final")
    ok = search[search.status == "ok"]
    assert (ok.violation == 0).all(), "an infeasible policy was trained"
    assert ok.accuracy.between(0, 1).all() and (ok.bops <= ok["limit"] * (1 + 1e-9)).all()
    assert ok.node_id.notna().all() and (ok.steps == 40).all()
    policy = json.loads(ok.policy.iloc[0])
    assert set(policy["layers"]) == {"fc1", "fc2", "fc3"}
    # generation 0 took the uniform policies of least predicted distortion, as its log line says
    line = next(x for x in out.splitlines() if x.startswith("uniform policies for generation 0: "))
    assert "by the least predicted distortion: " in line, line
    named = set(line.split("distortion: ")[1].split(", "))
    settings = [{f"s{lp['sparsity']:g} w{lp['weight_bits']}a{lp['activation_bits']}"
                 for lp in json.loads(text)["layers"].values()} for text in search.policy]
    assert len(named) == 2 and named <= {s.pop() for s in settings if len(s) == 1}, (named, line)

    gens = pd.read_parquet(run / "generations.parquet")
    assert list(gens.generation) == [0, 1, 2]
    assert (gens.hypervolume.diff().dropna() >= -1e-12).all(), "hypervolume of the archive front fell"

    pareto = pd.read_parquet(run / "pareto.parquet")
    assert {label for labels in pareto.label for label in labels.split(", ")} >= {"pareto", "uniform reference"}
    # the uniform reference: the 2 (final_uniform) most accurate screened uniform policies, as its log line says
    screened = trials[trials.phase.isin(["search", "uniform"]) & (trials.status == "ok")]
    uniform = screened[[len({tuple(lp.values()) for lp in json.loads(text)["layers"].values()}) == 1
                        for text in screened.policy]]
    # ties at digits' 144 validation images are likely: ranked as the search ranks them, by (accuracy, genome)
    top2 = {g for _, g in sorted(((a, tuple(map(int, g))) for a, g in zip(uniform.accuracy, uniform.genome)),
                                 reverse=True)[:2]}
    references = pareto[["uniform reference" in labels.split(", ") for labels in pareto.label]]
    assert {tuple(map(int, g)) for g in references.genome} == top2 and len(top2) == 2, (references.genome_key, uniform)
    assert "the 2 best screened uniform policies within budget, fine-tuned in the final phase" in out
    assert pareto.test_accuracy.notna().all()
    # it learned: digits has 10 classes (chance 0.10); the policies within 1/256 of FP32's BOPs
    # keep well over 0.8 after 200 steps
    assert pareto.test_accuracy.min() > 0.8 and ok.accuracy.max() > 0.8
    assert (pareto.steps == 200).all()  # final_steps of the smoke preset


def test_bad_input_fails_before_ray_and_writes_nothing(tmp_path):
    for args, needle in [
        (["--preset", "nope"], "valid choices"),
        (["--preset", "smoke", "--budget", "bops=1e-9"], "cannot be met"),
        (["--preset", "smoke", "--population", "3"], "population"),
        (["--preset", "smoke", "--target", "tpu9000"], "valid choices"),
    ]:
        result = run_evo(["search", *args, "--storage", str(tmp_path / "runs")], cwd=tmp_path, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr, (args, result.stderr)
        assert not (tmp_path / "runs").exists()
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("population: [unclosed\n")
    result = run_evo(["search", "--config", str(bad_yaml), "--storage", str(tmp_path / "runs")], cwd=tmp_path)
    assert result.returncode == 2 and "not valid YAML" in result.stderr


def kill_when(point: str, proc, run, deadline) -> list[str]:
    """Read the driver's output until ``point`` is reached, then SIGKILL its process group:
    gen0 = a generation-0 result is in the log (generation 0 not closed); mid = a generation-1
    result is in the log (the state on disk is generation 0's close); final = the final phase began.
    Returns the lines read."""
    log = run / "search_log.jsonl"
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if point == "gen0" or (point == "mid" and line.startswith("gen   0")) or \
                (point == "final" and line.startswith("final: fine-tuning")):
            break
        assert time.time() < deadline, "".join(seen)
    if point == "gen0":
        assert not any(line.startswith("gen   0") for line in seen), "generation 0 closed before the kill"
    if point in ("gen0", "mid"):
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert time.time() < deadline, "no result was logged"
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return seen


def test_resume_after_the_driver_is_killed_at_each_point(tmp_path, uninterrupted):
    """One run, its driver SIGKILLed three times: in generation 0 (not closed), in generation 1
    (the state on disk is generation 0's close) and as the final phase begins; each kill is
    followed by a --resume (which the next kill interrupts in turn), the last one runs to the end.
    One chain rather than three runs from scratch: each resume is also a resume of a resumed run."""
    args = ["search", "--preset", "smoke", "--storage", str(tmp_path), "--name", "killed"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = tmp_path / "killed"
    searched_before: set = set()
    for point in ("gen0", "mid", "final"):
        command = EVO + args + (["--resume"] if point != "gen0" else [])
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, start_new_session=True)
        seen = kill_when(point, proc, run, time.time() + 300)
        if point != "gen0":
            assert any(line.startswith("resuming:") for line in seen), "".join(seen)
        assert (run / "search_state.json").exists(), point
        if (run / "trials.parquet").exists():
            trials = pd.read_parquet(run / "trials.parquet")
            searched = set(trials[trials.phase == "search"].genome_key)
            assert searched_before <= searched, f"{point}: rows of an earlier driver were lost"
            searched_before = searched

    result = run_evo(args + ["--resume"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming:" in result.stdout
    trials = pd.read_parquet(run / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert search.genome_key.is_unique
    assert searched_before <= set(search.genome_key)
    # counted in the trial folders of all four drivers: no genome finished training twice
    trained = trainings(run)
    searched = {key: n for (phase, key), n in trained.items() if phase == "search"}
    assert max(searched.values()) == 1, {k: n for k, n in searched.items() if n > 1}
    screened = {key: n for (phase, key), n in trained.items() if phase == "uniform"}  # the best-uniform screens
    assert screened and max(screened.values()) == 1, {k: n for k, n in screened.items() if n > 1}
    assert set(searched) == set(search.genome_key)
    gens = pd.read_parquet(run / "generations.parquet")
    assert list(gens.generation) == [0, 1, 2]
    # the resumed run evaluated the same genomes as the uninterrupted one with the same seed
    reference = pd.read_parquet(uninterrupted[1] / "trials.parquet")
    assert set(search.genome_key) == set(reference[reference.phase == "search"].genome_key)
    assert len(pd.read_parquet(run / "pareto.parquet")) >= 1
