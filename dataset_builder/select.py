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
    scores: dict[str, dict[str, float]],
    quantile: float,
    lower_better: dict[str, bool] | None = None,
    metrics: list[str] | None = None,
) -> dict:
    """
    Pure selection rule.

    Args:
        scores: `{image id: {metric: score}}`; every image must have every metric.
        quantile: e.g. 0.05 to keep the top 95 % of each metric.
        lower_better: metrics whose better end is the low one.
        metrics: the metrics to select on; defaults to those of the first image.

    Returns:
        `{"thresholds": {metric: value}, "kept": [ids], "dropped": {id: [metrics failed]}}`.
    """
    lower_better = lower_better or {}
    if not scores:
        raise ValueError("There are no scores to select from; run the score stage first.")
    metrics = sorted(metrics or next(iter(scores.values())))
    incomplete = sorted(i for i, values in scores.items() if any(m not in values for m in metrics))
    if incomplete:
        raise ValueError(f"{len(incomplete)} image(s) lack a score for some of {metrics} (e.g. {incomplete[0]}).")
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


def select_images(root, config: SelectConfig, metrics: list[str], seed_range: tuple[int, int] | None = None) -> dict:
    """Apply [`compute_selection`] to the scores of the build's pool (the images in `seed_range`) on `metrics`, and
    write `selection.json`."""
    layout = BuildLayout(root)
    pool = {layout.image_id(s) for s in layout.generated_seeds(seed_range)}
    all_scores, all_corrupt = load_scores(layout)
    corrupt = [i for i in all_corrupt if seed_range is None or seed_range[0] <= int(i) < seed_range[1]]
    scores = {i: v for i, v in all_scores.items() if i in pool}
    metrics_file = layout.scores_dir / "metrics.json"
    lower_better = (
        {k: v["lower_better"] for k, v in json.loads(metrics_file.read_text()).items()}
        if metrics_file.exists()
        else {}
    )
    missing = sorted(i for i in pool if any(m not in scores.get(i, {}) for m in metrics))
    if missing:
        raise ValueError(
            f"{len(missing)} generated image(s) lack a score for some of {metrics} (e.g. {missing[0]}); run "
            "`fluxgen score`."
        )
    selection = compute_selection(scores, config.quantile, lower_better, metrics)
    selection.update(
        {
            "quantile": config.quantile,
            "metrics": sorted(metrics),
            "lower_better": {m: lower_better.get(m, False) for m in metrics},
            "corrupt": sorted(corrupt),
            "counts": {
                "scored": len(scores),
                "kept": len(selection["kept"]),
                "dropped": len(selection["dropped"]),
                "corrupt": len(corrupt),
            },
        }
    )
    atomic_write_json(layout.selection_path, selection)
    return selection
