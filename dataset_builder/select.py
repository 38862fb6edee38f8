"""Stage 3: keep the images whose every score clears that metric's quantile over the whole pool.

Paper 001 keeps the "top 95 %": an image stays only if each metric is at least its 5th percentile. For metrics
where lower is better (PIQE, NIQE, ...) the test is mirrored: at most the 95th percentile. Percentiles need the
whole pool, so this runs after scoring has finished.
"""

from __future__ import annotations

import json

import numpy as np

from .config import SelectConfig
from .io_utils import BuildLayout, atomic_write_json
from .score import load_scores


def compute_selection(
    scores: dict[str, dict[str, float]], quantile: float, lower_better: dict[str, bool] | None = None
) -> dict:
    """
    Pure selection rule.

    Args:
        scores: `{image id: {metric: score}}`; every image must have every metric.
        quantile: e.g. 0.05 to keep the top 95 % of each metric.
        lower_better: metrics whose better end is the low one.

    Returns:
        `{"thresholds": {metric: value}, "kept": [ids], "dropped": {id: [metrics failed]}}`.
    """
    lower_better = lower_better or {}
    if not scores:
        raise ValueError("There are no scores to select from; run the score stage first.")
    metrics = sorted(next(iter(scores.values())))
    thresholds = {}
    for metric in metrics:
        values = np.array([s[metric] for s in scores.values()], dtype=np.float64)
        q = 1 - quantile if lower_better.get(metric, False) else quantile
        thresholds[metric] = float(np.quantile(values, q))
    kept, dropped = [], {}
    for image_id in sorted(scores):
        failed = [
            m
            for m in metrics
            if (
                scores[image_id][m] > thresholds[m]
                if lower_better.get(m, False)
                else scores[image_id][m] < thresholds[m]
            )
        ]
        if failed:
            dropped[image_id] = failed
        else:
            kept.append(image_id)
    return {"thresholds": thresholds, "kept": kept, "dropped": dropped}


def select_images(root, config: SelectConfig) -> dict:
    """Apply [`compute_selection`] to the build's scores and write `selection.json`."""
    layout = BuildLayout(root)
    scores, corrupt = load_scores(layout)
    metrics_file = layout.scores_dir / "metrics.json"
    lower_better = (
        {k: v["lower_better"] for k, v in json.loads(metrics_file.read_text()).items()}
        if metrics_file.exists()
        else {}
    )
    missing = sorted(set(map(layout.image_id, layout.generated_seeds())) - set(scores) - set(corrupt))
    if missing:
        raise ValueError(
            f"{len(missing)} generated image(s) are not scored yet (e.g. {missing[0]}); run `fluxgen score`."
        )
    selection = compute_selection(scores, config.quantile, lower_better)
    selection.update(
        {"quantile": config.quantile, "lower_better": lower_better, "corrupt": sorted(corrupt),
         "counts": {"scored": len(scores), "kept": len(selection["kept"]), "dropped": len(selection["dropped"]),
                    "corrupt": len(corrupt)}}
    )  # fmt: skip
    atomic_write_json(layout.selection_path, selection)
    return selection
