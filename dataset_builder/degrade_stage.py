"""Stage 4: make the LQ partner of every kept image, with its degradation record beside it."""

from __future__ import annotations

import json

from PIL import Image
from tqdm.auto import tqdm

from .config import DegradeConfig
from .degradations import degrade
from .io_utils import BuildLayout, atomic_save_png, atomic_write_json, remove_stale_temp_files


def degrade_images(root, config: DegradeConfig, show_progress: bool = True, device: str | None = None) -> int:
    """Degrade every kept image whose LQ is missing (on the GPU when there is one); returns how many were written.

    Noise is drawn on the CPU either way, so a record replays on any device up to float rounding in the filters."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    layout = BuildLayout(root)
    if not layout.selection_path.exists():
        raise ValueError("No selection.json yet; run `fluxgen select` first.")
    remove_stale_temp_files(layout.root / "lq")
    kept = [int(i) for i in json.loads(layout.selection_path.read_text())["kept"]]
    pending = [s for s in kept if not (layout.lq_path(s).exists() and layout.lq_params_path(s).exists())]
    for seed in tqdm(pending, desc="Degrading", disable=not show_progress):
        with Image.open(layout.image_path(seed)) as hq:
            result = degrade(
                hq.convert("RGB"), preset=config.preset, scale=config.scale, seed=seed + config.seed_offset
            )
        # Record first, image second: an LQ on disk always has its record.
        atomic_write_json(layout.lq_params_path(seed), result.params)
        atomic_save_png(layout.lq_path(seed), result.lq)
    return len(pending)
