"""Reference outputs of the shipped mini model: a few fixed restorations written when the model ships, which the test
suite restores again, so any change to what the pipeline computes (the sampler, test-time search, tiling, a distilled
schedule) shows up as a failing test, not as a quietly different model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REFERENCE_DIR = "reference_outputs"
# Everything a refactor of the pipeline could change; small, so the suite runs them in seconds.
# "default" is what a call with no settings restores (the adapter's `sampling_defaults`); the others fix the settings
# they are not about (FLUX.1's restoration weight 0.05 and wavelet fix), so a change of defaults leaves them alone.
FIXED = {"restoration_weight": 0.05, "color_fix": "wavelet"}
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "no-rss-no-colour-fix": {"num_inference_steps": 4, "restoration_weight": 0.0, "color_fix": "none"},
    "tiles": {**FIXED, "num_inference_steps": 3, "upscale": 4, "tile_size": 64, "tile_overlap": 16},
    "search": {**FIXED, "num_inference_steps": 6, "tts": {"num_candidates": 3, "verifiers": ["entropy"],
                                                          "perturbation": "renoise"}},
    "beam": {**FIXED, "num_inference_steps": 6, "tts": {"num_candidates": 4, "beam_width": 2, "mspde_mode": "partial",
                                                        "perturbation": "zero_drift", "verifiers": ["entropy"]}},
    "sigmas": {**FIXED, "sigmas": [1.0, 0.6, 0.3]},
}  # fmt: skip


def reference_input() -> Image.Image:
    """A 32x32 crop of a held-out photo, bicubic-downscaled (the LQ of every case)."""
    from skimage import data

    return Image.fromarray(data.chelsea()).crop((140, 60, 268, 188)).resize((32, 32), Image.BICUBIC)


def restore_case(pipe, name: str) -> Image.Image:
    """The restoration of case `name` (seed 0)."""
    import torch

    from fluxir_hub.tts import TTSConfig

    settings = dict(CASES[name])
    if "tts" in settings:
        settings["tts"] = TTSConfig(**settings["tts"])
    settings.setdefault("upscale", 2)
    return pipe(reference_input(), generator=torch.Generator().manual_seed(0), **settings).images[0]


def write_reference_outputs(pipe, folder: str | Path) -> list[str]:
    """Restore every case with `pipe` and save it as `folder/reference_outputs/<case>.png`."""
    out = Path(folder) / REFERENCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        restore_case(pipe, name).save(out / f"{name}.png")
    return list(CASES)


def largest_difference(a: Image.Image, b: Image.Image) -> int:
    """The largest difference of two 8-bit images, per pixel and channel."""
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())
