"""``report.md`` (the policy's cost table in Markdown) and ``policy.yaml`` of an export.

The numbers are ``hardware.cost.layer_costs`` / ``total_costs``, the ones the search
priced; ``measured`` adds what the export itself measured (payload bytes, onnxruntime
agreement, ...) under the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from hardware.cost import layer_costs, total_costs
from hardware.policy import Policy
from hardware.specs import LayerSpec
from hardware.targets import DEFAULT_TARGET

# (row key, column heading, formatter); the totals row fills the additive columns only
COLUMNS = (
    ("name", "layer", str),
    ("kind", "type", str),
    ("shape", "shape", str),
    ("kept_out_channels", "kept out", str),
    ("kept_in_channels", "kept in", str),
    ("weight_bits", "w bits", str),
    ("activation_bits", "a bits", str),
    ("params", "params", "{:,}".format),
    ("nnz", "nnz", "{:,}".format),
    ("bops", "BOPs", "{:,.0f}".format),
    ("size_bits", "size bits", "{:,.0f}".format),
    ("size_bits_honest", "honest size bits", "{:,.0f}".format),
    ("energy_pj", "energy uJ", lambda value: f"{value / 1e6:.3f}"),
    ("latency_s", "latency us", lambda value: f"{value * 1e6:.2f}"),
)
RATIOS = (("bops_vs_fp32", "BOPs vs FP32"), ("bops_vs_int8", "BOPs vs INT8"),
          ("size_honest_vs_fp32", "honest size vs FP32"), ("size_honest_vs_int8", "honest size vs INT8"),
          ("energy_vs_fp32", "energy vs FP32"), ("latency_vs_fp32", "latency vs FP32"))


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cost_table_markdown(specs: Sequence[LayerSpec], policy: Policy, target: str = DEFAULT_TARGET) -> str:
    """The per-layer cost table with a totals row, and the times-smaller ratios."""
    rows, totals = layer_costs(specs, policy, target), total_costs(specs, policy, target)
    lines = [_row([heading for _, heading, _ in COLUMNS]),
             _row(["---" if key in ("name", "kind", "shape") else "---:" for key, _, _ in COLUMNS])]
    lines += [_row([fmt(row[key]) for key, _, fmt in COLUMNS]) for row in rows]
    lines.append(_row(["**total**" if key == "name" else (fmt(totals[key]) if key in totals else "")
                       for key, _, fmt in COLUMNS]))
    lines += ["", *(f"- {label}: {totals[key]:,.1f}x smaller" for key, label in RATIOS)]
    return "\n".join(lines)


def write_report(folder, specs: Sequence[LayerSpec], policy: Policy, *, target: str = DEFAULT_TARGET,
                 title: str = "Compressed model", measured: Mapping[str, object] | None = None) -> dict:
    """Write ``folder/report.md`` and ``folder/policy.yaml`` (``Policy.save``); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = [f"# {title}", "", f"Structure: {policy.structure}; target: {target}.", "",
            cost_table_markdown(specs, policy, target), ""]
    if measured:
        text += ["## Measured", "", *(f"- {key}: {value}" for key, value in measured.items()), ""]
    report, policy_file = folder / "report.md", folder / "policy.yaml"
    report.write_text("\n".join(text))
    policy.save(policy_file)
    return {"report": str(report), "policy": str(policy_file)}
