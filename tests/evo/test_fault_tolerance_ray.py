"""Fault tolerance and bad cluster input on a simulated two-node Ray cluster (ray.cluster_utils):
a worker node lost mid-search, trials that produce NaN, a GPU request on a cluster without GPUs,
and an --address where nothing listens.

The driver killed mid-generation and resumed with --resume is covered on local Ray by
tests/evo/test_search_ray.py::test_resume_after_the_driver_is_killed_at_each_point; a raising
trial through Tune by tests/evo/test_tuner_ray.py::test_failed_policy_trial_is_reported_with_its_error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from evo.runs.config import SearchConfig
from evo.methods import run_method

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Trials of ~1-2 s, so that removing a node catches one running; two bit widths per gene so the
# uniform screening after the search stays short.
SMALL_SEARCH = dict(model="mlp", dataset="digits", budget="bops=1/256", target="bitserial", population=4,
                    generations=2, fine_tune_steps=1000, final_steps=20, batch_size=64, lr=0.05, seed=0,
                    weight_bit_choices=(2, 4), activation_bit_choices=(2, 4), max_failures=2)


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, one CPU each, joined by this process as the driver."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.parametrize("command", ["search", "baseline uniform", "baseline admm"])
def test_gpu_request_on_a_cluster_without_gpus_fails_before_writing(cluster, tmp_path, command):
    storage = str(tmp_path / "runs")
    if command == "baseline admm":
        from evo.methods.admm import ADMMConfig

        cfg = ADMMConfig(model="mlp", dataset="digits", budgets=("size=1/50",), seeds=1, gpus_per_trial=1.0,
                         address=cluster[0].address, storage=storage)
        run = lambda: run_method("admm", cfg, log=lambda *_: None)  # noqa: E731
    else:
        cfg = SearchConfig(**SMALL_SEARCH, gpus_per_trial=1.0, address=cluster[0].address, storage=storage)
        if command == "search":
            run = lambda: run_method("evo", cfg, log=lambda *_: None)  # noqa: E731
        else:
            run = lambda: run_method("uniform", cfg, log=lambda *_: None)  # noqa: E731
    with pytest.raises(ValueError, match=r"gpus_per_trial=1.0 but the cluster has 0 GPUs"):
        run()
    assert not (tmp_path / "runs").exists()


def test_unreachable_address_fails_in_seconds_with_exit_2(tmp_path):
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "evo.cli", "search", "--preset", "smoke", "--address", "127.0.0.1:1",
                             "--storage", str(tmp_path / "runs")], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, RAY_ADDRESS=""))
    assert result.returncode == 2, result.stderr
    assert "--address '127.0.0.1:1': nothing answers there" in result.stderr
    assert time.time() - started < 20  # ray.init itself retries the GCS for minutes
    assert not (tmp_path / "runs").exists()


def remove_node_after(cluster, node, trials_dir, rows: int, removed: dict) -> None:
    """Background: once ``rows`` search results are on disk, kill the worker node without warning."""
    deadline = time.time() + 120
    while len(list(trials_dir.glob("part-*.parquet"))) < rows and time.time() < deadline:
        time.sleep(0.2)
    removed["at"] = time.time()
    cluster.remove_node(node, allow_graceful=False)


def test_search_survives_losing_a_worker_node(cluster, tmp_path):
    head_cluster, worker = cluster
    cfg = SearchConfig(**SMALL_SEARCH, address=head_cluster.address, storage=str(tmp_path), name="lost-node")
    removed: dict = {}
    killer = threading.Thread(target=remove_node_after, daemon=True,
                              args=(head_cluster, worker, cfg.run_dir / "trials.parquet", 2, removed))
    killer.start()
    outcome = run_method("evo", cfg, log=lambda *_: None)
    killer.join(timeout=5)
    assert "at" in removed, "the worker node was never removed"

    trials = pd.read_parquet(outcome.run_dir / "trials.parquet")
    search = trials[trials.phase == "search"]
    generations = pd.read_parquet(outcome.run_dir / "generations.parquet")
    assert list(generations.generation) == [0, 1], "a generation was not closed"
    assert search.genome_key.is_unique, "a finished result was written twice"
    assert len(search) == generations.trials.sum(), "a finished result is missing from trials.parquet"
    assert (search.status == "ok").all(), search[["status", "error"]]
    # a trial running on the worker failed with it (Tune's error.txt) and its retry finished: recorded once, ok
    lost = [p.parent.name.split("_")[2] for p in (outcome.run_dir / "tune").glob("policy_trial_*/error.txt")]
    assert lost and set(lost) <= set(search.trial_id), lost
    # the worker ran trials before it was removed and none after
    on_worker = search[search.node_id == worker.node_id]
    assert len(on_worker) >= 1
    assert (on_worker.finished_at < removed["at"] + 1.0).all()
    assert (trials[trials.finished_at > removed["at"] + 1.0].node_id != worker.node_id).all()
    deadline = time.time() + 60  # the GCS marks a killed node dead after its health checks fail
    while sum(n["Alive"] for n in ray.nodes()) != 1 and time.time() < deadline:
        time.sleep(1)
    assert len(ray.nodes()) == 2 and sum(n["Alive"] for n in ray.nodes()) == 1


def test_non_finite_trials_are_recorded_as_failed_and_the_search_goes_on(cluster, tmp_path):
    # lr=1e30 makes every fine-tune diverge to a NaN loss (at lr=1e6 the fake-quantized weights stay
    # bounded and the loss, ~1e24, is still finite)
    cfg = SearchConfig(**{**SMALL_SEARCH, "lr": 1e30, "fine_tune_steps": 10, "generations": 1},
                       address=cluster[0].address, storage=str(tmp_path), name="nan")
    outcome = run_method("evo", cfg, log=lambda *_: None)
    trials = pd.read_parquet(outcome.run_dir / "trials.parquet")
    search = trials[trials.phase == "search"]
    assert len(search) == 4
    assert (search.status == "failed").all()
    assert search.error.str.startswith("non-finite").all(), search.error.tolist()
    generations = pd.read_parquet(outcome.run_dir / "generations.parquet")
    assert generations.failed.tolist() == [4] and generations.feasible_fraction.tolist() == [0.0]
    assert outcome.final_rows == []  # nothing feasible to fine-tune on the test split
