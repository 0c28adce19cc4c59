"""A node that joins a running search gets trials: with --max-concurrent above what the cluster
holds at start, the extra trials wait as pending Tune trials (what an autoscaler scales up on)
and run on the new node once it is there. Real Ray processes (ray.cluster_utils.Cluster)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from evo.runs.config import SearchConfig
from evo.methods import run_method
from tests.evo.test_fault_tolerance_ray import SMALL_SEARCH

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_node_that_joins_mid_search_runs_trials(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})  # room for one trial
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        # 16 trials of ~3 s on a quiet 2-core machine: a node takes seconds to start and its worker
        # to import torch, and the search must still have trials to give it then (here the first
        # trial on the new node began ~3 s after the join; 4 generations leave ~12 trials after it).
        # 1200 steps (~1 s a trial on this machine in 2026-12) let the head finish all 16 before the
        # new node ran one, and the test failed on a machine that had grown faster.
        cfg = SearchConfig(**{**SMALL_SEARCH, "generations": 4, "fine_tune_steps": 3600}, max_concurrent=2,
                           address=cluster.address, storage=str(tmp_path), name="joined")
        lines: list[str] = []
        outcome: dict = {}
        # the search runs in a thread: Cluster.add_node installs signal handlers, main thread only
        search = threading.Thread(target=lambda: outcome.update(run=run_method("evo", cfg, log=lines.append)), daemon=True)
        search.start()
        parts = cfg.run_dir / "trials.parquet"
        # the node joins only after a trial finished on the head alone (a loaded machine can take
        # minutes to start Ray's workers; joining earlier would leave nothing to tell the two apart)
        deadline = time.time() + 600
        while len(list(parts.glob("part-*.parquet"))) < 1 and time.time() < deadline and search.is_alive():
            time.sleep(0.2)
        assert list(parts.glob("part-*.parquet")), f"no trial finished on the head within 600 s: {lines}"
        node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        joined_at = time.time()
        search.join(timeout=300)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert "run" in outcome, lines
    assert any("2 concurrent trials (1 fit the cluster now; the rest wait for nodes)" in line for line in lines), lines
    trials = pd.read_parquet(outcome["run"].run_dir / "trials.parquet").query("phase == 'search'")
    assert (trials.finished_at > joined_at).sum() >= 4, "the search ended too soon after the node joined to tell"
    assert trials[trials.finished_at < joined_at].node_id.nunique() == 1, "only the head had room at first"
    assert (trials.node_id == node.node_id).sum() >= 1, "the node that joined ran no trial"
