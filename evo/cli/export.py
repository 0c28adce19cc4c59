"""`evo export RUN_DIR [--policy ROW|FILE] --out DIR`: the chosen policy as a deployable model
(packed weights, ONNX checked in onnxruntime, policy.yaml, report.md); see evo.runs.export."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a run's policy as a deployable model: packed weights, ONNX (QDQ), report",
        description="Without --policy: the final policy with the best validation accuracy within the budget. "
                    "Needs the export extra: pip install 'evo[export]'.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of evo search or evo baseline (<storage>/<name>)")
    p.add_argument("--policy", help="row number of RUN_DIR/pareto.parquet (0 = the final table's first row) or a "
                                    "policy file (YAML/JSON) to fine-tune and export")
    p.add_argument("--out", required=True, help="a new (or empty) folder for model.evo.pt, model.onnx, policy.yaml, "
                                                "report.md")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    import importlib.util

    from evo.runs.export import export_run

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"{' and '.join(missing)} not installed; evo export needs them: pip install 'evo[export]'")
    export_run(args.run_dir, out=args.out, policy=args.policy)
    return 0
