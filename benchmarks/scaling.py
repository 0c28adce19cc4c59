"""Cluster scaling: what more nodes buy, and what a large population costs the driver.

1. Trials per hour on a simulated cluster (``ray.cluster_utils.Cluster``: a head node with no CPUs
   for trials, plus 1, 2 and 4 worker nodes of 1 CPU each), running the evo searcher over trials
   that each do a FIXED amount of CPU work (torch matmuls on one thread, calibrated to
   --trial-seconds on an idle core), so that oversubscribed cores show up as slower trials.
   Efficiency = throughput(n) / (n x throughput(1)). All simulated nodes share this machine's
   cores: beyond its core count the efficiency measures oversubscription, not Ray.
2. The driver's seconds per generation at populations of 1,000 and 10,000 genomes (ResNet-20's
   22 layers, exact table pricing and repair, instant fake accuracies): suggest + result
   bookkeeping + NSGA-II survival + breeding + repair, i.e. the time the driver adds per
   generation however fast the trials are.

    python benchmarks/scaling.py [--nodes 1 2 4] [--trial-seconds 2.5] [--driver-populations 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MATRIX = 256


def busy_work(iterations: int) -> float:
    """A fixed amount of single-thread CPU work; returns its seconds."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(MATRIX, MATRIX, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for _ in range(iterations):
        a = torch.tanh(a @ a.T / MATRIX)
    return time.perf_counter() - started


def calibrate(seconds: float) -> int:
    """Iterations that take ``seconds`` on one idle core (best of three short runs)."""
    busy_work(20)  # warm up
    per_iteration = min(busy_work(100) for _ in range(3)) / 100
    return max(1, round(seconds / per_iteration))


def busy_trial(config):
    import ray
    from ray import tune

    compute = busy_work(config["iterations"])
    tune.report({"accuracy": random.Random(config["genome"]).random(), "compute_seconds": compute,
                 "node_id": ray.get_runtime_context().get_node_id()})


class Tally:
    """Search listener: the trials' own compute seconds and the nodes they ran on."""

    def __init__(self):
        self.trials, self.compute, self.nodes = 0, 0.0, set()

    def on_evaluated(self, trial_id, candidate, result, result_outcome):
        self.trials += 1
        self.compute += (result or {}).get("compute_seconds", 0.0)
        self.nodes.add((result or {}).get("node_id"))

    def on_generation(self, stats):
        pass


def lenet_space_and_cost():
    from evo.core.cost_table import make_cost_fn
    from evo.core.space import SearchSpace
    from hardware.profiler import profile_model
    from hardware.targets import load_target
    from trainables.models import create_model

    specs = profile_model(create_model("lenet5", in_channels=1, num_classes=10, image_shape=(1, 28, 28)), (1, 28, 28))
    space = SearchSpace(layer_names=tuple(s.name for s in specs))
    limit = sum(s.macs for s in specs) * 1024 / 512
    return space, make_cost_fn(space, specs, load_target("bitserial"), "bops"), limit


def timed_search(workers: int, iterations: int, population: int, generations: int) -> dict:
    """One search with ``workers`` concurrent slots on the running cluster."""
    from ray import tune

    from evo.core.population import Population
    from evo.tune.searcher import EvoSearcher
    from evo.tune.tuner import build_tuner

    space, cost, limit = lenet_space_and_cost()
    pop = Population(space=space, cost_fn=cost, limit=limit, population_size=population, generations=generations,
                     seed=0)
    tally = Tally()
    searcher = EvoSearcher(pop, decode=space.decode, cost_fn=cost, listener=tally)
    suggest = searcher.suggest
    searcher.suggest = lambda trial_id: ({**c, "iterations": iterations} if isinstance(c := suggest(trial_id), dict)
                                         else c)
    with tempfile.TemporaryDirectory() as run_dir:
        tuner = build_tuner(tune.with_resources(busy_trial, {"cpu": 1}), run_dir=Path(run_dir), experiment="scaling",
                            search_alg=searcher, max_concurrent=workers, max_failures=0, verbose=0)
        started = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - started
    return {"workers": workers, "trials": tally.trials, "wall": wall, "trials_per_hour": tally.trials / wall * 3600,
            "mean_trial_seconds": tally.compute / max(tally.trials, 1), "nodes_used": len(tally.nodes - {None})}


def cluster_scaling(node_counts: list[int], trial_seconds: float, population: int, generations: int) -> None:
    import ray
    from ray.cluster_utils import Cluster

    iterations = calibrate(trial_seconds)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node runs no trials
    ray.init(address=cluster.address, logging_level="ERROR")
    rows = []
    try:
        for count in sorted(node_counts):
            while len(cluster.worker_nodes) < count:
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            rows.append(timed_search(count, iterations, population, generations))
    finally:
        ray.shutdown()
        cluster.shutdown()
    base = rows[0]["trials_per_hour"] / rows[0]["workers"]
    print(f"cluster scaling: {iterations} iterations of a {MATRIX}x{MATRIX} matmul per trial (~{trial_seconds:g} s "
          f"on an idle core), population {population} x {generations} generations; this machine has "
          f"{os.cpu_count()} cores")
    print("  worker nodes | trials | wall s | trials/hour | mean trial s | nodes used | efficiency")
    for row in rows:
        efficiency = row["trials_per_hour"] / (row["workers"] * base)
        print(f"  {row['workers']:>12} | {row['trials']:>6} | {row['wall']:>6.1f} | {row['trials_per_hour']:>11.0f} | "
              f"{row['mean_trial_seconds']:>12.2f} | {row['nodes_used']:>10} | {efficiency:>9.0%}")


def driver_generation_seconds(population: int, generations: int) -> None:
    from ray.tune.search import Searcher

    from evo.core.cost_table import make_cost_fn
    from evo.core.population import Population
    from evo.tune.searcher import EvoSearcher
    from evo.core.space import SearchSpace
    from hardware.profiler import profile_model
    from hardware.targets import load_target
    from trainables.models import create_model

    specs = profile_model(create_model("resnet20", in_channels=3, num_classes=10, image_shape=(3, 32, 32)), (3, 32, 32))
    space = SearchSpace(layer_names=tuple(s.name for s in specs))
    cost = make_cost_fn(space, specs, load_target("bitserial"), "bops")
    limit = sum(s.macs for s in specs) * 1024 / 128
    started = time.perf_counter()
    pop = Population(space=space, cost_fn=cost, limit=limit, population_size=population, generations=generations,
                     seed=0)
    build = time.perf_counter() - started
    searcher = EvoSearcher(pop, decode=space.decode, cost_fn=cost)
    rng = random.Random(0)
    per_generation, live, n = [], [], 0
    started = time.perf_counter()
    while (config := searcher.suggest(f"t{n}")) is not Searcher.FINISHED:
        if config is not None:
            live.append(f"t{n}")
            n += 1
            continue
        closed = len(pop.generation_stats)
        for trial_id in live:  # the whole generation finishes at once: only the driver's time is left
            searcher.on_trial_complete(trial_id, result={"accuracy": rng.random()})
        live = []
        if len(pop.generation_stats) > closed:
            per_generation.append(time.perf_counter() - started)
            started = time.perf_counter()
    print(f"driver: ResNet-20 ({len(specs)} layers), population {population}: generation 0 built in {build:.1f} s; "
          f"seconds per generation (suggest + results + survival + breeding + repair): "
          f"{', '.join(f'{s:.1f}' for s in per_generation)} ({n} trials)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 4], help="worker node counts (none: skip)")
    parser.add_argument("--trial-seconds", type=float, default=2.5)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--driver-populations", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--driver-generations", type=int, default=2)
    args = parser.parse_args()
    if any(n < 1 for n in args.nodes):
        raise SystemExit(f"--nodes {args.nodes}: every count must be >= 1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    for population in args.driver_populations:
        driver_generation_seconds(population, args.driver_generations)
    if args.nodes:
        cluster_scaling(args.nodes, args.trial_seconds, args.population, args.generations)


if __name__ == "__main__":
    main()
