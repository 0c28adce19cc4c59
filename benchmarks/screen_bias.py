"""Does the search's short screen rate its best policies fairly against the best uniform one?

For each `evo search` run given: its --top K most accurate screened search policies and its best
uniform policy (of its final phase's uniform reference, the best by mean validation accuracy),
each screened again (--screen-steps, the run's by default) on --seeds fresh fine-tune seeds and
fine-tuned in full (--final-steps) on one more fresh seed; their validation accuracies are
printed per policy, and then, over all runs, the mean gain from screen to final of the evolved
policies and of the uniform ones. A larger gain for the uniform policy means the screen
under-rates it against the evolved ones by the difference: where the search's screened lead is
smaller, its final phase can reverse it. Fresh seeds also tell a winner's curse (the run's own
screen of its top policies above their re-screens) from a bias of the screen's length (both
screens alike, the final gains differ).

Every evaluation is the search's own trial (``trainables.policy_trial.evaluate_policy``, through
benchmarks/rank_fidelity.py's setup), in-process, without Ray; only the validation split is
read, and nothing is written into the runs.

    python benchmarks/screen_bias.py runs/bases/evo-bops512-base*-s*
    python benchmarks/screen_bias.py --top 2 --seeds 5 runs/mine
"""

from __future__ import annotations

import argparse
import statistics
import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRESH_SEED = 1001  # the re-screens take FRESH_SEED, FRESH_SEED + 1, ...; the final the next one


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="`evo search` run folders")
    parser.add_argument("--top", type=int, default=4, help="the run's most accurate screened policies (default 4)")
    parser.add_argument("--seeds", type=int, default=3, help="fresh seeds of each re-screen (default 3)")
    parser.add_argument("--screen-steps", type=int, help="(default: the run's fine_tune_steps)")
    parser.add_argument("--final-steps", type=int, help="(default: the run's final_steps)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    for name in ("top", "seeds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)} must be at least 1")
    for name in ("screen_steps", "final_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    return args


def run_policies(run: Path, top: int):
    """(the run's ``top`` most accurate screened search genomes at its top rung, best first
    (``rank_fidelity.top_screened``); its best uniform genome; genome -> the run's own screened
    validation accuracy at the top rung's steps)."""
    import pandas as pd

    from evo.core.genome import genome_from_key
    from evo.runs.summary import average_repeats, best_uniform_row
    from rank_fidelity import top_screened

    trials = pd.read_parquet(run / "trials.parquet")
    try:
        keys = top_screened(trials, top)
    except ValueError as err:
        raise SystemExit(f"screen_bias: {run}: {err.args[0].replace('--noise-top', '--top')}")
    ok = trials[trials.status == "ok"]
    best = best_uniform_row(average_repeats(ok[ok.phase == "final"].to_dict("records")))
    if best is None:
        raise SystemExit(f"screen_bias: {run} has no final uniform reference (no uniform policy fits its budget?)")
    uniform = best["genome_key"]
    screens = ok[ok.phase.isin(["search", "uniform"])]
    screens = screens[screens.steps == screens[screens.phase == "search"].steps.max()]
    screened = screens.groupby("genome_key").accuracy.max()
    genome = {key: genome_from_key(key) for key in [*keys, uniform]}
    return [genome[key] for key in keys], genome[uniform], {genome[k]: screened[k] for k in genome}


def main(argv=None) -> int:
    import torch

    import rank_fidelity

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    gains = {"evolved": [], "uniform": []}
    for run in args.runs:
        setup = Namespace(run=run, policies=3, seeds=args.seeds, screen_steps=args.screen_steps,
                          final_steps=args.final_steps, batch_size=None, lr=None, seed=None)
        prepared = rank_fidelity.setup_from_run(setup)
        top, uniform, screened = run_policies(run, args.top)
        for i, genome in enumerate([*top, uniform]):
            kind = "uniform" if genome == uniform else f"top {i + 1}"
            seeds = range(FRESH_SEED, FRESH_SEED + args.seeds)
            again = statistics.mean(rank_fidelity.val_accuracy(prepared, genome, s, setup.screen_steps) for s in seeds)
            final = rank_fidelity.val_accuracy(prepared, genome, FRESH_SEED + args.seeds, setup.final_steps)
            gains["uniform" if genome == uniform else "evolved"].append((final - again) * 100)
            print(f"{run.name} {kind:>7}: run's screen {screened[genome] * 100:.2f}, re-screened {again * 100:.2f} "
                  f"({args.seeds} seeds), final {final * 100:.2f} ({setup.final_steps} steps): gain "
                  f"{(final - again) * 100:+.2f} points", flush=True)
    evolved, uniform = (statistics.mean(gains[k]) for k in ("evolved", "uniform"))
    print(f"gain from the re-screen to the final, mean: evolved {evolved:+.2f} points ({len(gains['evolved'])} "
          f"policies), uniform {uniform:+.2f} ({len(gains['uniform'])}); the screen under-rates the uniform "
          f"policies against the evolved ones by {uniform - evolved:+.2f} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
