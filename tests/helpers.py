"""Shared test helpers: small real photos and seeded generators."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def photo(name: str = "astronaut", size: tuple[int, int] = (32, 24)) -> Image.Image:
    """A real photo from skimage.data, resized to `size` (width, height), as RGB."""
    from skimage import data

    array = getattr(data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3]).resize(size, Image.BICUBIC)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_pairs_folder(folder, names=("astronaut", "chelsea"), size=(128, 128), scale=4, extra_columns=None):
    """A FluxGen-like `datasets` folder (data/train-*.parquet with hq/lq image columns) from skimage photos."""
    import io
    from pathlib import Path

    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    from dataset_builder import degrade

    rows = {"id": [], "hq": [], "lq": [], "prompt": []}
    for i, name in enumerate(names):
        hq = photo(name, size)
        lq = degrade(hq, preset="mild", scale=scale, seed=i).lq
        for key, image in (("hq", hq), ("lq", lq)):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rows[key].append({"bytes": buffer.getvalue(), "path": f"{i}_{key}.png"})
        rows["id"].append(f"{i:08d}")
        rows["prompt"].append("")
    features = {"id": Value("string"), "hq": ImageFeature(), "lq": ImageFeature(), "prompt": Value("string")}
    for key, values in (extra_columns or {}).items():
        rows[key] = values
        features[key] = Value("string")
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=Features(features)).to_parquet(str(data / "train-00000-of-00001.parquet"))
    return Path(folder)
