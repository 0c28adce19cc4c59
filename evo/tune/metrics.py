"""Search progress as Ray metrics, shown in the Ray dashboard's Metrics view and scraped by any
Prometheus pointed at the nodes' metrics export port, beside Ray's own metrics.

One named actor per run (``evo-metrics-<run name>``) owns the metric objects. Ray exports a
metric from the process that set it, so one long-lived owner gives every series of a run one
stable set of labels, and the driver only sends it fire-and-forget calls: ``.remote()``
returns at once and nothing waits on the result, so a slow or dead metrics actor never holds
up the search. The actor is not detached: it dies with the driver that made it.

Exported names (Ray prefixes ``ray_``; every series is labelled ``run`` and ``method``):
``evo_generation``, ``evo_hypervolume``, ``evo_best_feasible_accuracy``,
``evo_feasible_fraction``, ``evo_front_size`` (gauges, set when a generation closes),
``evo_trials_finished`` and ``evo_trials_failed`` (counters; Prometheus adds ``_total``) and
``evo_trial_seconds`` (histogram of each search trial's wall seconds; Ray 2.60 exports its
``_sum`` from bucket midpoints, so read the buckets and ``_count``, not the sum).

Ray 2.60 drops a gauge series that was not set again within two report intervals (~20 s), and a
generation can take hours, so the actor sets its gauges again every second. A counter appears at
its first increment (Ray refuses ``inc(0)``): no ``evo_trials_failed_total`` series means none failed.
"""

from __future__ import annotations

import math
import threading
import time

import ray

ACTOR_PREFIX = "evo-metrics-"
TAG_KEYS = ("run", "method")
GENERATION_GAUGES = {  # generation_stats key -> (metric name, description)
    "generation": ("evo_generation", "last generation the search closed (0-based)"),
    "hypervolume": ("evo_hypervolume", "hypervolume of the feasible front (accuracy x budget headroom)"),
    "best_feasible_accuracy": ("evo_best_feasible_accuracy", "best validation accuracy within the budget"),
    "feasible_fraction": ("evo_feasible_fraction", "fraction of the last generation's trials within the budget"),
    "front_size": ("evo_front_size", "policies on the feasible Pareto front"),
}
# A LeNet-5 trial takes seconds on a GPU, a ResNet-20 one minutes on a CPU.
TRIAL_SECONDS_BOUNDARIES = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 3600]
# Inside the gauge TTL (2 report intervals; Ray floors the interval at 1 s); five sets a second cost nothing.
GAUGE_REFRESH_SECONDS = 1.0


def actor_name(run_name: str) -> str:
    return f"{ACTOR_PREFIX}{run_name}"


@ray.remote(num_cpus=0, max_restarts=0)
class EvoMetrics:
    """Owns the run's metric objects; every method is cheap and returns at once."""

    def __init__(self, run_name: str, method: str):
        from ray.util.metrics import Counter, Gauge, Histogram

        tags = {"run": run_name, "method": method}
        self._gauges = {}
        for key, (name, description) in GENERATION_GAUGES.items():
            self._gauges[key] = Gauge(name, description=description, tag_keys=TAG_KEYS)
            self._gauges[key].set_default_tags(tags)
        self._finished = Counter("evo_trials_finished", description="search trials finished (failed included)",
                                 tag_keys=TAG_KEYS)
        self._failed = Counter("evo_trials_failed", description="search trials that failed", tag_keys=TAG_KEYS)
        self._seconds = Histogram("evo_trial_seconds", description="wall seconds of one search trial",
                                  boundaries=TRIAL_SECONDS_BOUNDARIES, tag_keys=TAG_KEYS)
        for metric in (self._finished, self._failed, self._seconds):
            metric.set_default_tags(tags)
        self._values = {"trials_finished": 0, "trials_failed": 0, "trial_seconds_sum": 0.0}
        self._lock = threading.Lock()
        threading.Thread(target=self._keep_gauges_alive, name="evo-metrics-refresh", daemon=True).start()

    def _keep_gauges_alive(self) -> None:  # runs until the actor's process ends
        while True:
            time.sleep(GAUGE_REFRESH_SECONDS)
            with self._lock:
                for key, gauge in self._gauges.items():
                    if key in self._values:
                        gauge.set(self._values[key])

    def record_trial(self, failed: bool, seconds: float | None) -> None:
        self._finished.inc(1)
        self._values["trials_finished"] += 1
        if failed:
            self._failed.inc(1)
            self._values["trials_failed"] += 1
        if seconds is not None:
            self._seconds.observe(seconds)
            self._values["trial_seconds_sum"] += seconds

    def record_generation(self, stats: dict) -> None:
        with self._lock:
            for key, gauge in self._gauges.items():
                value = stats.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):  # no feasible policy yet: leave unset
                    gauge.set(float(value))
                    self._values[key] = float(value)

    def set_totals(self, trials_finished: int, trials_failed: int) -> None:
        """Bring the counters up to a resumed run's totals (idempotent: only ever adds the difference)."""
        for key, counter, total in (("trials_finished", self._finished, trials_finished),
                                    ("trials_failed", self._failed, trials_failed)):
            missing = int(total) - self._values[key]
            if missing > 0:
                counter.inc(missing)
                self._values[key] += missing

    def values(self) -> dict:
        """What was last set, for tests and `ray.get` from a notebook."""
        return dict(self._values)


class MetricsListener:
    """A search listener (``on_evaluated`` / ``on_generation``) that forwards to the run's EvoMetrics
    actor without waiting for it."""

    def __init__(self, actor):
        self.actor = actor

    @classmethod
    def start(cls, run_name: str, *, method: str = "evo") -> "MetricsListener":
        """Create (or find, within this driver's job) the run's metrics actor on the driver's node,
        so losing a worker node never takes the metrics with it."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        actor = EvoMetrics.options(name=actor_name(run_name), get_if_exists=True, scheduling_strategy=here).remote(
            run_name, method)
        return cls(actor)

    def on_evaluated(self, trial_id: str, candidate, result: dict | None, result_outcome) -> None:
        self.actor.record_trial.remote(bool(result_outcome.failed), trial_seconds(result))

    def on_generation(self, stats: dict) -> None:
        self.actor.record_generation.remote({k: stats.get(k) for k in GENERATION_GAUGES})

    def restore(self, *, trials_finished: int, trials_failed: int, generation_stats: list[dict]) -> None:
        """After --resume: the run's totals so far and its last closed generation."""
        self.actor.set_totals.remote(trials_finished, trials_failed)
        if generation_stats:
            self.on_generation(generation_stats[-1])


def trial_seconds(result: dict | None) -> float | None:
    """The trial's own wall time (compute time when that is all it reported); None when it died."""
    for key in ("wall_seconds", "compute_seconds"):
        value = (result or {}).get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
            return float(value)
    return None
