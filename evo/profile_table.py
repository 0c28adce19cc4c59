"""`evo profile`'s human-readable table."""

from __future__ import annotations

COLUMNS = (
    ("name", "layer", "<14", str),
    ("kind", "type", "<6", str),
    ("shape", "shape", "<14", str),
    ("params", "params", ">9", lambda v: f"{v:,}"),
    ("nnz", "nnz", ">9", lambda v: f"{v:,}"),
    ("weight_bits", "w", ">3", str),
    ("activation_bits", "a", ">3", str),
    ("macs", "MACs", ">11", lambda v: f"{v:,}"),
    ("bops", "BOPs", ">15", lambda v: f"{v:,.0f}"),
    ("size_bits", "size bits", ">11", lambda v: f"{v:,.0f}"),
    ("size_bits_honest", "honest bits", ">12", lambda v: f"{v:,.0f}"),
    ("energy_pj", "energy uJ", ">10", lambda v: f"{v / 1e6:.3f}"),
    ("latency_s", "latency us", ">11", lambda v: f"{v * 1e6:.2f}"),
)


def format_profile(layers: list[dict], totals: dict, title: str) -> str:
    header = " ".join(f"{label:{align}}" for _, label, align, _ in COLUMNS)
    lines = [title, header, "-" * len(header)]
    for row in layers:
        lines.append(" ".join(f"{fmt(row[key]):{align}}" for key, _, align, fmt in COLUMNS))
    total = {**{k: "" for k, *_ in COLUMNS}, **{k: totals[k] for k, *_ in COLUMNS if k in totals}}
    total.update(name="total", kind="", shape="", weight_bits="", activation_bits="")
    lines.append("-" * len(header))
    lines.append(" ".join(f"{(fmt(total[key]) if total[key] != '' else ''):{align}}" for key, _, align, fmt in COLUMNS))
    lines.append(f"BOPs reduction: {totals['bops_vs_fp32']:.3g}x vs FP32, {totals['bops_vs_int8']:.3g}x vs uniform INT8; "
                 f"size (Yang et al.'s count): {totals['size_bits'] / 8192:.2f} KiB, with indices/scales/biases: "
                 f"{totals['size_bits_honest'] / 8192:.2f} KiB")
    return "\n".join(lines)
