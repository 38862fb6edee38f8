"""A markdown table in the shape of paper 001 Table 1: datasets x metrics as rows, methods as columns."""

from __future__ import annotations

import math

from .metrics import lower_is_better

# Paper 001 Table 1, the FluxIR column ("Ours").
PAPER_FLUXIR: dict[str, dict[str, float]] = {
    "DIV2K-Val": {"CLIPIQA": 0.5934, "MUSIQ": 69.6956, "MANIQA": 0.6331, "PSNR": 19.3811, "SSIM": 0.4574,
                  "LPIPS": 0.3888},
    "RealSR": {"CLIPIQA": 0.5413, "MUSIQ": 67.4536, "MANIQA": 0.6334, "PSNR": 20.7176, "SSIM": 0.5269,
               "LPIPS": 0.3672},
    "DRealSR": {"CLIPIQA": 0.5136, "MUSIQ": 66.6202, "MANIQA": 0.6024, "PSNR": 21.3549, "SSIM": 0.5675,
                "LPIPS": 0.4310},
    "RealLQ250": {"CLIPIQA": 0.5639, "MUSIQ": 70.7770, "MANIQA": 0.6314},
}  # fmt: skip
PAPER_COLUMN = "FluxIR (paper)"


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def render_table(
    results: dict[str, dict[str, dict[str, float | None]]],
    metrics: list[str],
    notes: dict[tuple[str, str], str] | None = None,
    paper_reference: bool = False,
) -> str:
    """
    Args:
        results: `{dataset: {method: {metric: mean or None}}}`; None means "not available" (missing images or no HQ).
        metrics: Row order within each dataset.
        notes: `(dataset, method) -> footnote` (e.g. "12 of 600 images missing").
        paper_reference: Add the paper's FluxIR numbers as a reference column (not ranked).

    Returns:
        Markdown; the best measured value of each row is in bold (lower is better for LPIPS and PIQE).
    """
    methods = sorted({m for per_dataset in results.values() for m in per_dataset})
    columns = methods + ([PAPER_COLUMN] if paper_reference else [])
    lines = ["| Dataset | Metric | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for dataset, per_method in results.items():
        for metric in metrics:
            values = {m: per_method.get(m, {}).get(metric) for m in methods}
            if all(v is None for v in values.values()):
                continue
            finite = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
            best = None
            if len(finite) > 1:
                best = (min if lower_is_better(metric) else max)(finite, key=finite.get)
            cells = []
            for m in methods:
                v = values[m]
                cell = "n/a" if v is None else (f"**{_fmt(v)}**" if m == best else _fmt(v))
                cells.append(cell)
            if paper_reference:
                ref = PAPER_FLUXIR.get(dataset, {}).get(metric)
                cells.append("" if ref is None else _fmt(ref))
            arrow = "↓" if lower_is_better(metric) else "↑"
            lines.append(f"| {dataset} | {metric} {arrow} | " + " | ".join(cells) + " |")
    for (dataset, method), note in sorted((notes or {}).items()):
        lines.append(f"\n- {dataset} / {method}: {note}")
    return "\n".join(lines) + "\n"
