"""Stage 2: score every generated image with no-reference IQA (pyiqa), resumably.

Metric models are loaded once. Each batch's scores go to their own file `scores/part-<first id>.json`, written
atomically, so a killed run loses at most one batch. Unreadable images are skipped and listed as `corrupt`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ScoreConfig
from .io_utils import BuildLayout, atomic_write_json, remove_stale_temp_files


def create_metrics(config: ScoreConfig, device: str | torch.device = "cpu") -> dict:
    """Build each configured pyiqa metric once."""
    from fluxir_hub.evaluation.metrics import create_pyiqa_metric

    return {name: create_pyiqa_metric(name, device, pretrained=config.pretrained) for name in config.metrics}


def load_scores(layout: BuildLayout) -> tuple[dict[str, dict[str, float]], list[str]]:
    """All scores so far as `{image id: {metric: score}}`, plus the ids found corrupt."""
    scores: dict[str, dict[str, float]] = {}
    corrupt: list[str] = []
    for part in sorted(layout.scores_dir.glob("part-*.json")):
        data = json.loads(part.read_text())
        scores.update(data["scores"])
        corrupt.extend(data.get("corrupt", []))
    return scores, corrupt


def _load_tensor(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


def score_images(root: Path, config: ScoreConfig, device: str | None = None, show_progress: bool = True) -> int:
    """Score every generated image not scored yet; returns how many were scored now."""
    layout = BuildLayout(root)
    remove_stale_temp_files(layout.scores_dir)
    done, corrupt = load_scores(layout)
    seen = set(done) | set(corrupt)
    pending = [seed for seed in layout.generated_seeds() if layout.image_id(seed) not in seen]
    if not pending:
        return 0
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    metrics = create_metrics(config, device)
    # Selection needs each metric's direction (PIQE/NIQE: lower is better) without loading the models again.
    atomic_write_json(
        layout.scores_dir / "metrics.json", {n: {"lower_better": bool(m.lower_better)} for n, m in metrics.items()}
    )

    scored = 0
    for start in tqdm(range(0, len(pending), config.batch_size), desc="Scoring", disable=not show_progress):
        batch = pending[start : start + config.batch_size]
        tensors, ids, bad = [], [], []
        for seed in batch:
            try:
                tensors.append(_load_tensor(layout.image_path(seed)))
                ids.append(layout.image_id(seed))
            except (OSError, SyntaxError, ValueError):
                bad.append(layout.image_id(seed))
        results: dict[str, dict[str, float]] = {i: {} for i in ids}
        # Generated images share one size, but group by size anyway so odd files never break a batch.
        by_size: dict[tuple, list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_size.setdefault(tuple(tensor.shape), []).append(index)
        with torch.no_grad():
            for indices in by_size.values():
                stack = torch.stack([tensors[i] for i in indices]).to(device)
                for name, metric in metrics.items():
                    values = metric(stack).flatten().tolist()
                    for i, value in zip(indices, values, strict=True):
                        results[ids[i]][name] = float(value)
        atomic_write_json(
            layout.scores_dir / f"part-{layout.image_id(batch[0])}.json", {"scores": results, "corrupt": bad}
        )
        scored += len(ids)
        if bad:
            tqdm.write(f"Skipped unreadable image(s): {', '.join(bad)}")
    return scored
