"""`evo compare RUN_DIR... --out DIR`: one report over runs of `evo search` and the baselines.

Runs of different models, datasets or targets, or a folder that is not a run, exit with code 2 and
a message.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare runs: Markdown table per budget and PNG plots",
        description="Reads run folders of evo search and evo baseline (any methods, seeds and budgets of one "
                    "model, dataset and target) and writes report.md, pareto.png, accuracy_vs_budget.png, "
                    "hypervolume.png and compute.png into --out.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (<storage>/<name>)")
    p.add_argument("--out", required=True, help="folder for report.md and the plots (created if missing)")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from evo.compare import write_report
    from evo.compare.tables import compute_lines, per_seed_results, summarize
    from evo.runs import read_run

    runs = [read_run(path) for path in args.run_dirs]
    written = write_report(runs, args.out)
    for line in compute_lines(summarize(per_seed_results(runs))):
        print(line)
    for path in written:
        print(path)
    return 0
