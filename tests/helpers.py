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
