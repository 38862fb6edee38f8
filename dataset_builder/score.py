"""Stage 2: score every generated image with no-reference IQA (pyiqa), resumably.

Metric models are loaded once. Each batch's scores go to a part file of their own, written atomically, so a killed run
loses at most one batch and no later run can overwrite an earlier part. An image is done when it has a score for every
configured metric, so a metric added on `--resume` is computed for the images scored before.

An unreadable image is moved aside (`<id>.png.corrupt`) and listed as `corrupt`: the next `fluxgen generate` (or
`fluxgen run`) makes it again, and it is scored then like any other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fluxir_hub.distributed import blocks, process_state, shard

from .config import ScoreConfig
from .io_utils import BuildLayout, atomic_write_json, check_image, quarantine, remove_stale_temp_files


def create_metrics(names: list[str], pretrained: bool = True, device: str | torch.device = "cpu") -> dict:
    """Build each pyiqa metric once."""
    from fluxir_hub.evaluation.metrics import create_pyiqa_metric

    return {name: create_pyiqa_metric(name, device, pretrained=pretrained) for name in names}


def load_scores(layout: BuildLayout) -> tuple[dict[str, dict[str, float]], list[str]]:
    """
    All scores so far as `{image id: {metric: score}}` (later parts add to and override earlier ones), and the ids
    whose last scoring attempt found the image unreadable and that have no score since.
    """
    parts = []
    for path in layout.scores_dir.glob("part-*.json"):
        data = json.loads(path.read_text())
        parts.append((data.get("written_at", 0), path.name, data))
    scores: dict[str, dict[str, float]] = {}
    corrupt: set[str] = set()
    for _, _, data in sorted(parts, key=lambda item: item[:2]):
        for image_id, values in data["scores"].items():
            scores.setdefault(image_id, {}).update(values)
            corrupt.discard(image_id)
        corrupt.update(data.get("corrupt", []))
    return scores, sorted(corrupt - set(scores))


def _load_tensor(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


def score_images(
    root: Path,
    config: ScoreConfig,
    seed_range: tuple[int, int] | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> int:
    """
    Score every image (in `seed_range`) that lacks a score for any configured metric; returns how many this process
    scored. Across processes (`accelerate launch`), each scores its share of the batches on its own device, and
    batches are fixed blocks of seeds, so every image gets the same scores for any number of processes.
    """
    state = process_state()
    layout = BuildLayout(root)
    if state.is_main_process:
        remove_stale_temp_files(layout.scores_dir)
    state.wait_for_everyone()
    done, _ = load_scores(layout)
    pending = [
        seed
        for seed in layout.generated_seeds(seed_range)
        if any(m not in done.get(layout.image_id(seed), {}) for m in config.metrics)
    ]
    batches = shard(blocks(pending, config.batch_size), state)
    state.wait_for_everyone()  # every process has read the scores before any writes new ones
    if not batches:
        return 0
    device = device or str(state.device)
    metrics = create_metrics(config.metrics, config.pretrained, device)
    # Selection needs each metric's direction (PIQE/NIQE: lower is better) without loading the models again.
    directions_path = layout.scores_dir / "metrics.json"
    directions = json.loads(directions_path.read_text()) if directions_path.exists() else {}
    directions.update({n: {"lower_better": bool(m.lower_better)} for n, m in metrics.items()})
    atomic_write_json(directions_path, directions)

    scored = 0
    for batch in tqdm(batches, desc=f"Scoring [{state.process_index}]", disable=not show_progress):
        tensors, ids, bad = [], [], []
        for seed in batch:
            path = layout.image_path(seed)
            try:
                tensors.append(_load_tensor(path))
                ids.append(layout.image_id(seed))
            except (OSError, SyntaxError, ValueError) as err:
                if check_image(path) is None:  # not the file's fault (e.g. out of memory): let it surface
                    raise
                bad.append(layout.image_id(seed))
                tqdm.write(
                    f"Unreadable image {path} ({err}); moved to {quarantine(path).name}, regenerate it with "
                    "`fluxgen generate` (or `fluxgen run`)."
                )
        results: dict[str, dict[str, float]] = {i: {} for i in ids}
        # Generated images share one size, but group by size anyway so odd files never break a batch.
        by_size: dict[tuple, list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_size.setdefault(tuple(tensor.shape), []).append(index)
        with torch.no_grad():
            for indices in by_size.values():
                for name, metric in metrics.items():
                    need = [i for i in indices if name not in done.get(ids[i], {})]
                    if not need:
                        continue
                    values = metric(torch.stack([tensors[i] for i in need]).to(device)).flatten().tolist()
                    for i, value in zip(need, values, strict=True):
                        results[ids[i]][name] = float(value)
        written_at = time.time_ns()
        atomic_write_json(
            layout.scores_dir / f"part-{written_at}-{layout.image_id(batch[0])}.json",  # a block: one process's
            {"written_at": written_at, "scores": results, "corrupt": bad},
        )
        scored += len(ids)
    return scored
