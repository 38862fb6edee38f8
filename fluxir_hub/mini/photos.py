"""The real photos the mini model is trained and evaluated on: the colour photographs that ship with scikit-image.

Every photo is in exactly one split. `heldout` photos never enter any training stage (VAE, base generator, FluxGen,
adapter); they exist to measure restoration. The Space's examples are made from the held-out photos too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Photo:
    name: str  # the `skimage.data` function that returns it
    split: str  # "train" or "heldout"
    credit: str
    licence: str


PHOTOS: tuple[Photo, ...] = (
    Photo("rocket", "train", "SpaceX (DSCOVR launch on Falcon 9)", "public domain"),
    Photo("motorcycle_left", "train", "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("motorcycle_right", "train", "Middlebury 2014 stereo benchmark (Scharstein et al.), right view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("hubble_deep_field", "train", "NASA / Hubble eXtreme Deep Field", "public domain (NASA media guidelines)"),
    Photo("immunohistochemistry", "train", "Center for Microscopy And Molecular Imaging (CMMI)",
          "no known copyright restrictions"),
    Photo("retina", "train", "Mikael Häggström, Wikimedia Commons", "CC0 1.0"),
    Photo("astronaut", "heldout", "NASA (Eileen Collins)", "public domain"),
    Photo("chelsea", "heldout", "Stefan van der Walt (Chelsea the cat)", "CC0"),
    Photo("coffee", "heldout", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
)  # fmt: skip


def photo_names(split: str) -> list[str]:
    if split not in ("train", "heldout"):
        raise ValueError(f"`split` must be 'train' or 'heldout', got {split!r}.")
    return [p.name for p in PHOTOS if p.split == split]


def load_photo(name: str) -> Image.Image:
    """A scikit-image photo as RGB PIL (the stereo pair comes from `stereo_motorcycle`)."""
    if name not in {p.name for p in PHOTOS}:
        raise ValueError(f"Unknown photo {name!r}; known: {[p.name for p in PHOTOS]}.")
    try:
        from skimage import data
    except ImportError as err:
        raise ImportError("Building the mini model needs scikit-image: `pip install scikit-image`.") from err
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        array = left if name.endswith("left") else right
    else:
        array = getattr(data, name)()
    return Image.fromarray(np.ascontiguousarray(array[..., :3])).convert("RGB")


def photos_as_tensors(names: list[str]) -> list[torch.Tensor]:
    """`(3, H, W)` float tensors in [-1, 1] (the VAE's range)."""
    return [torch.from_numpy(np.asarray(load_photo(n), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for n in names]


FLAT_PATCH_STD = 0.04  # in [-1, 1] units: a patch this uniform (black sky, microscope background) teaches nothing


def sample_patches(
    photos: list[torch.Tensor],
    batch: int,
    size: int,
    generator: torch.Generator,
    augment: bool = True,
    max_tries: int = 8,
) -> torch.Tensor:
    """
    `batch` random `size`-pixel square crops `(batch, 3, size, size)`, each from a photo drawn uniformly (so the large,
    mostly black astronomy and retina images do not dominate). With `augment`: random flips, 90-degree turns, and a
    random order of the colour channels (six photos hold few colours; a permuted retina is a blue-green scene).
    Nearly uniform crops are redrawn up to `max_tries` times.
    """
    out = []
    for _ in range(batch):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        for _ in range(max_tries):
            top = int(torch.randint(0, photo.shape[1] - size + 1, (1,), generator=generator))
            left = int(torch.randint(0, photo.shape[2] - size + 1, (1,), generator=generator))
            patch = photo[:, top : top + size, left : left + size]
            if patch.std() > FLAT_PATCH_STD:
                break
        if augment:
            flip, turns = (
                torch.randint(0, 2, (1,), generator=generator),
                torch.randint(0, 4, (1,), generator=generator),
            )
            if int(flip):
                patch = patch.flip(-1)
            patch = torch.rot90(patch, int(turns), dims=(1, 2))
            patch = patch[torch.randperm(3, generator=generator)]
        out.append(patch)
    return torch.stack(out)
