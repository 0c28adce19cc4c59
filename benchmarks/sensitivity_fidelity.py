"""Does generation 0's sensitivity model rank a run's policies as the screens did?

For a finished `evo search` run, the per-layer Fisher sensitivity (``trainables.sensitivity``,
measured anew on the run's base model, as the search did) predicts each screened policy's loss
increase; this prints the Spearman correlation of that prediction (negated) with the screened
validation accuracy, over all screened policies, the uniform ones and the others. Then the same
with the activation part of the prediction scaled by ALPHA (``--alphas``): the weight and the
activation distortion are each second-order estimates, and a model where one is off by a factor
ranks policies badly at ALPHA 1. Only the validation accuracies the run recorded are read.

    python benchmarks/sensitivity_fidelity.py runs/default
    python benchmarks/sensitivity_fidelity.py runs/tiny --alphas 1,4,16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # rank_fidelity, beside it


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `evo search` run folder")
    p.add_argument("--alphas", default="0.25,0.5,1,2,4,8,16,32",
                   help="comma-separated factors on the activation distortion (> 0)")
    args = p.parse_args(argv)
    try:
        args.alphas = [float(a) for a in args.alphas.split(",")]
    except ValueError:
        p.error(f"--alphas {args.alphas!r} must be comma-separated numbers")
    if not all(a > 0 for a in args.alphas):
        p.error(f"--alphas {args.alphas} must all be > 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    from scipy.stats import spearmanr

    from evo.core.genome import genome_from_key
    from evo.methods.evolve import run_sensitivity
    from evo.runs.prepare import prepare
    from rank_fidelity import search_run

    run, cfg = search_run(args.run, "sensitivity_fidelity")
    prep = prepare(cfg, resume=True, log=lambda *_: None)  # the run's data, split, base model (cached), space
    if cfg.sensitivity_samples == 0:  # a run without guided policies: measure as the default would
        cfg = cfg.replace(sensitivity_samples=512)
        prep = dataclasses.replace(prep, cfg=cfg)
    sensitivity = run_sensitivity(prep, print)
    if sensitivity is None:
        raise SystemExit("sensitivity_fidelity: the sensitivity could not be measured on this model")
    trials = run.trials
    screened = trials[trials.phase.isin(["search", "uniform"]) & (trials.status == "ok")
                      & (trials.steps == cfg.fine_tune_steps)]
    if len(screened) < 3:
        raise SystemExit(f"sensitivity_fidelity: {run.path} has {len(screened)} screened policies; need >= 3")
    genomes = [genome_from_key(key) for key in screened.genome_key]
    parts = np.array([sensitivity.parts(genome) for genome in genomes])
    uniform_genomes = set(prep.space.uniform_genomes())
    uniform = np.array([genome in uniform_genomes for genome in genomes])
    accuracy = screened.accuracy.to_numpy()
    print(f"{run.path.name}: {len(screened)} policies screened {cfg.fine_tune_steps} steps "
          f"({uniform.sum()} uniform); Spearman(-predicted distortion, screened validation accuracy):")
    print(f"{'alpha':>7} {'all':>7} {'uniform':>8} {'others':>7}")

    def rho(mask, predicted) -> str:
        return f"{spearmanr(-predicted[mask], accuracy[mask]).statistic:.3f}" if mask.sum() >= 3 else "-"

    everything = np.ones(len(accuracy), dtype=bool)
    for alpha in args.alphas:
        predicted = parts[:, 0] + alpha * parts[:, 1]
        print(f"{alpha:7g} {rho(everything, predicted):>7} {rho(uniform, predicted):>8} {rho(~uniform, predicted):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
