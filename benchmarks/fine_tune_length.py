"""How much of a policy's accuracy is its fine-tune length? One genome (gene indices, as
trials.parquet's ``genome`` column holds them) fine-tuned for each of several step counts from
the same base with the same seed, as one search-phase trial each (``evaluate_policy``,
in-process, without Ray); prints the validation accuracy of each. Only the validation split
is read.

    python benchmarks/fine_tune_length.py --budget size=1/100 --genome 0,5,5,2,2,5,7,0,5,2,3,5 \\
        --steps 500,1266,2532
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rank_fidelity  # noqa: E402  (its setup is the search's own preparation)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet5")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--budget", default="bops=1/512")
    p.add_argument("--genome", required=True, help="comma-separated gene indices (trials.parquet's genome)")
    p.add_argument("--steps", default="500,1000,2000", help="comma-separated fine-tune step counts")
    p.add_argument("--seed", type=int, default=0, help="the fine-tune seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in a one-CPU trial)")
    args = p.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        p.error(f"--steps {args.steps!r} must be comma-separated integers")
    if any(s < 1 for s in steps):
        p.error(f"--steps {args.steps!r}: every step count must be >= 1")

    from evo.runs.summary import describe_policy
    from trainables.policy_trial import evaluate_policy

    splits, base, specs, space, cost_fn, make_settings, genome = rank_fidelity.setup_genome(p, args,
                                                                                            threads=args.threads)
    policy = space.decode(genome)
    print(f"base: val {base.val_accuracy:.4f}; genome cost {cost_fn(genome):.6g}; "
          f"{describe_policy(json.dumps(policy.to_dict()))}")
    for count in steps:
        started = time.perf_counter()
        result = evaluate_policy(policy, splits=splits, base_state=base.state_dict, specs=specs,
                                 settings=make_settings(args.seed, count), final=False)
        print(f"{count:6d} steps: val accuracy {result['accuracy']:.4f}  ({time.perf_counter() - started:.0f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
