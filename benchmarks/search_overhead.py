"""Search overhead: what the orchestration costs on top of the trials' own work.

1. Orchestration efficiency on real local Ray: (search wall time x concurrent slots) /
   (sum of the trials' own compute seconds), with trials that compute for --trial-seconds
   each (a CPU-bound torch loop measured inside the trial). Goal <= 1.10.
2. Driver-side cost of the Searcher at a large population (ResNet-20's 22 layers, exact
   table pricing and repair): time per ``suggest``, per ``on_trial_complete``, and the time
   to close a generation (NSGA-II survival + breeding + repair), amortized per genome.
   Goal <= 5 ms per suggest.

    python benchmarks/search_overhead.py [--trial-seconds 10] [--population 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def busy_trial(config):
    import torch
    from ray import tune

    torch.set_num_threads(1)
    seconds = config["seconds"]
    a = torch.randn(256, 256)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        a = torch.tanh(a @ a.T / 256.0)
    compute = time.perf_counter() - started
    tune.report({"accuracy": random.Random(config["genome"]).random(), "compute_seconds": compute})


class Sum:
    def __init__(self):
        self.compute = 0.0
        self.trials = 0

    def on_evaluated(self, trial_id, candidate, result, result_outcome):
        self.compute += (result or {}).get("compute_seconds", 0.0)
        self.trials += 1

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
    return space, make_cost_fn(space, specs, load_target("bitserial"), "bops"), specs


def orchestration(trial_seconds: float, population: int, generations: int, slots: int) -> None:
    import ray
    from ray import tune

    from evo.core.population import Population
    from evo.tune.searcher import EvoSearcher
    from evo.tune.tuner import build_tuner
    from evo.tune.cluster import start_ray

    space, cost, specs = lenet_space_and_cost()
    limit = sum(s.macs for s in specs) * 1024 / 512
    start_ray(None, num_cpus=slots, log=lambda *_: None)
    pop = Population(space=space, cost_fn=cost, limit=limit, population_size=population, generations=generations, seed=0)
    totals = Sum()
    searcher = EvoSearcher(pop, decode=space.decode, cost_fn=cost, listener=totals)
    trainable = tune.with_resources(busy_trial, {"cpu": 1})

    original_suggest = searcher.suggest

    def suggest(trial_id):
        config = original_suggest(trial_id)
        if isinstance(config, dict):
            config["seconds"] = trial_seconds
        return config

    searcher.suggest = suggest
    with tempfile.TemporaryDirectory() as run_dir:
        tuner = build_tuner(trainable, run_dir=Path(run_dir), experiment="overhead", search_alg=searcher,
                            max_concurrent=slots, max_failures=0, verbose=0)
        started = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - started
    ray.shutdown()
    ratio = wall * slots / totals.compute
    print(f"orchestration: {totals.trials} trials of ~{trial_seconds:g} s on {slots} slots, population {population}, "
          f"{generations} generations")
    print(f"  search wall {wall:.1f} s, sum of trial compute {totals.compute:.1f} s")
    print(f"  (wall x slots) / compute = {ratio:.3f}   (goal <= 1.10)")


def driver_cost(population: int, generations: int) -> None:
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
    started = time.perf_counter()
    cost = make_cost_fn(space, specs, load_target("bitserial"), "bops")
    table_seconds = time.perf_counter() - started
    limit = sum(s.macs for s in specs) * 1024 / 128
    started = time.perf_counter()
    pop = Population(space=space, cost_fn=cost, limit=limit, population_size=population, generations=generations, seed=0)
    gen0_seconds = time.perf_counter() - started
    searcher = EvoSearcher(pop, decode=space.decode, cost_fn=cost)
    rng = random.Random(0)
    suggest_times, complete_times, live = [], [], []
    n = 0
    while True:
        t0 = time.perf_counter()
        config = searcher.suggest(f"t{n}")
        suggest_times.append(time.perf_counter() - t0)
        if config == Searcher.FINISHED:
            break
        if config is None:
            trial_id = live.pop(0)
            t0 = time.perf_counter()
            searcher.on_trial_complete(trial_id, result={"accuracy": rng.random()})
            complete_times.append(time.perf_counter() - t0)
            continue
        live.append(f"t{n}")
        n += 1
        if len(live) >= 64:  # 64 slots busy: complete the oldest
            t0 = time.perf_counter()
            searcher.on_trial_complete(live.pop(0), result={"accuracy": rng.random()})
            complete_times.append(time.perf_counter() - t0)
    for trial_id in live:
        searcher.on_trial_complete(trial_id, result={"accuracy": rng.random()})
    complete_sorted = sorted(complete_times)
    closes = [t for t in complete_times if t > 0.05]
    ms = 1e3
    print(f"driver: ResNet-20 ({len(specs)} layers), population {population}, {generations} generations, {n} trials")
    print(f"  cost table built once: {table_seconds * ms:.0f} ms; generation 0 (uniform + repaired random): "
          f"{gen0_seconds:.2f} s = {gen0_seconds / population * ms:.2f} ms per genome")
    print(f"  suggest: mean {statistics.mean(suggest_times) * ms:.3f} ms, "
          f"p99 {sorted(suggest_times)[int(0.99 * len(suggest_times))] * ms:.3f} ms, "
          f"max {max(suggest_times) * ms:.3f} ms   (goal <= 5 ms)")
    print(f"  on_trial_complete: median {complete_sorted[len(complete_sorted) // 2] * ms:.3f} ms; "
          f"generation closes (survival + breeding + repair): {len(closes)} x mean "
          f"{statistics.mean(closes) if closes else 0:.2f} s = "
          f"{(statistics.mean(closes) if closes else 0) / population * ms:.2f} ms per genome")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--search-population", type=int, default=8)
    parser.add_argument("--search-generations", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--skip-orchestration", action="store_true")
    args = parser.parse_args()
    driver_cost(args.population, args.generations)
    if not args.skip_orchestration:
        orchestration(args.trial_seconds, args.search_population, args.search_generations, args.slots)


if __name__ == "__main__":
    main()
