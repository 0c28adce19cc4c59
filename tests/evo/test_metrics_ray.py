"""Real Ray with its Prometheus endpoint on: the search's metrics reach ``/metrics`` with the values
the listener was given, a small search exports its own progress there, and Tune writes
TensorBoard event files holding each trial's reported accuracy."""

from __future__ import annotations

import socket
import struct
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from evo.core.trial import outcome
from evo.runs.config import SearchConfig
from evo.tune.metrics import MetricsListener, actor_name
from evo.core.population import Candidate

pytestmark = pytest.mark.ray

SCRAPE_SECONDS = 30
REPORT_INTERVAL_MS = 1000  # Ray's default is 10 s; its gauge TTL is two intervals
# A small search: 2 generations of 4, two bit widths per gene so the uniform screening stays short.
SMALL_SEARCH = dict(model="mlp", dataset="digits", budget="bops=1/256", target="bitserial", population=4,
                    generations=2, fine_tune_steps=20, final_steps=20, batch_size=64, lr=0.05, seed=0,
                    weight_bit_choices=(2, 4), activation_bit_choices=(2, 4), max_failures=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def metrics_port():
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": REPORT_INTERVAL_MS}, logging_level="WARNING")
    yield port
    ray.shutdown()


def scrape(port: int, run: str) -> dict:
    """{sample name or (name, le): value} of the evo_ series labelled with this run."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name.startswith("ray_evo_") and sample.labels.get("run") == run:
                key = (sample.name, sample.labels["le"]) if "le" in sample.labels else sample.name
                values[key] = sample.value
    return values


def scrape_until(port: int, run: str, expected: dict) -> dict:
    """Scrape until every expected series shows its value (bounded); return the last scrape."""
    deadline = time.time() + SCRAPE_SECONDS
    while True:
        seen = scrape(port, run)
        if all(seen.get(k) == pytest.approx(v) for k, v in expected.items()) or time.time() > deadline:
            return seen
        time.sleep(1.0)


def test_listener_values_reach_the_prometheus_endpoint(metrics_port):
    listener = MetricsListener.start("unit")
    candidate = Candidate(genome=(0, 1, 2), generation=2, repaired=False, ask_id=0)
    listener.on_evaluated("t1", candidate, {"accuracy": 0.9, "wall_seconds": 1.5}, outcome({"accuracy": 0.9}, False))
    listener.on_evaluated("t2", candidate, {"accuracy": 0.8, "compute_seconds": 3.0}, outcome({"accuracy": 0.8}, False))
    listener.on_evaluated("t3", candidate, None, outcome(None, True))  # a dead worker: no seconds
    listener.on_generation({"generation": 2, "hypervolume": 0.75, "best_feasible_accuracy": 0.9,
                            "feasible_fraction": 0.5, "front_size": 3, "trials": 3})
    # one named actor per run: a second start finds the same one
    assert MetricsListener.start("unit").actor._actor_id == listener.actor._actor_id
    assert ray.get_actor(actor_name("unit"))._actor_id == listener.actor._actor_id
    assert ray.get(listener.actor.values.remote()) == {
        "trials_finished": 3, "trials_failed": 1, "trial_seconds_sum": 4.5, "generation": 2.0, "hypervolume": 0.75,
        "best_feasible_accuracy": 0.9, "feasible_fraction": 0.5, "front_size": 3.0}

    expected = {
        "ray_evo_generation": 2, "ray_evo_hypervolume": 0.75, "ray_evo_best_feasible_accuracy": 0.9,
        "ray_evo_feasible_fraction": 0.5, "ray_evo_front_size": 3,
        "ray_evo_trials_finished_total": 3, "ray_evo_trials_failed_total": 1,
        "ray_evo_trial_seconds_count": 2,
        ("ray_evo_trial_seconds_bucket", "1.0"): 0, ("ray_evo_trial_seconds_bucket", "2.0"): 1,
        ("ray_evo_trial_seconds_bucket", "5.0"): 2, ("ray_evo_trial_seconds_bucket", "+Inf"): 2,
    }
    seen = scrape_until(metrics_port, "unit", expected)
    assert {k: seen.get(k) for k in expected} == expected
    # Ray exports the histogram's sum from bucket midpoints (1.5 + 3.5 here), not the observations
    assert 1.0 + 2.0 <= seen["ray_evo_trial_seconds_sum"] <= 2.0 + 5.0

    # a gauge set once is still exported after Ray's gauge TTL (2 report intervals) has passed
    time.sleep(3 * REPORT_INTERVAL_MS / 1000)
    later = scrape(metrics_port, "unit")
    assert later.get("ray_evo_generation") == 2 and later.get("ray_evo_hypervolume") == 0.75


def test_resumed_totals_are_not_counted_twice(metrics_port):
    listener = MetricsListener.start("resumed")
    listener.restore(trials_finished=10, trials_failed=2, generation_stats=[{"generation": 0, "hypervolume": 0.5}])
    listener.restore(trials_finished=10, trials_failed=2, generation_stats=[])
    listener.on_evaluated("t", Candidate((0,), 1, False, 0), {"wall_seconds": 0.2}, outcome({"accuracy": float("nan")}, False))
    values = ray.get(listener.actor.values.remote())
    assert (values["trials_finished"], values["trials_failed"], values["generation"]) == (11, 3, 0.0)


def read_tfevents_scalars(path: Path) -> dict:
    """Scalars of a TensorBoard event file (TFRecord framing: length, crc, payload, crc)."""
    from tensorboardX.proto import event_pb2

    data, offset, scalars = path.read_bytes(), 0, {}
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4
        scalars.update({v.tag: v.simple_value for v in event.summary.value})
    return scalars


@pytest.mark.slow
def test_small_search_exports_its_progress_and_tensorboard_events(metrics_port, tmp_path):
    from evo.methods import run_method

    cfg = SearchConfig(**SMALL_SEARCH, storage=str(tmp_path), name="watched")
    outcome = run_method("evo", cfg, log=lambda *_: None)
    trials = pd.read_parquet(outcome.run_dir / "trials.parquet")
    search = trials[trials.phase == "search"]
    last = pd.read_parquet(outcome.run_dir / "generations.parquet").iloc[-1]
    expected = {
        "ray_evo_generation": 1, "ray_evo_hypervolume": last.hypervolume,
        "ray_evo_best_feasible_accuracy": last.best_feasible_accuracy,
        "ray_evo_feasible_fraction": last.feasible_fraction, "ray_evo_front_size": last.front_size,
        "ray_evo_trials_finished_total": len(search), "ray_evo_trial_seconds_count": len(search),
    }
    seen = scrape_until(metrics_port, "watched", expected)
    assert {k: seen.get(k) for k in expected} == pytest.approx(expected)
    # a counter is exported from its first increment on: absent means no trial failed
    assert seen.get("ray_evo_trials_failed_total", 0) == (search.status == "failed").sum()

    # Tune's TensorBoard logger: one event file per trial, holding what the trial reported
    ok = search[search.status == "ok"].iloc[0]
    folders = list((outcome.run_dir / "tune").glob(f"policy_trial_{ok.trial_id}_*"))
    assert len(folders) == 1, folders
    (event_file,) = folders[0].glob("events.out.tfevents.*")
    scalars = read_tfevents_scalars(event_file)
    assert scalars["ray/tune/accuracy"] == pytest.approx(ok.accuracy, rel=1e-6)  # stored as float32
    assert scalars["ray/tune/bops"] == pytest.approx(ok.bops, rel=1e-6)
    assert len(list((outcome.run_dir / "tune").glob("*/events.out.tfevents.*"))) == len(search)
