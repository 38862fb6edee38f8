"""Raindrop removal task: water drops on a glass pane in front of the lens.

Each drop is an ellipse that acts as a small lens: it shows a flipped, minified and defocused view of the scene
around it (refraction), with a soft edge and a darker rim, over the scene itself. The scene behind the glass is
left sharp, as in the Raindrop dataset of Qian et al. (CVPR 2018), where the camera focuses past the pane.
Drops are recorded one by one (centre, radii, lens power, blur), so the record replays without randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .family import TaskDegradation
from .ops import blur_sigma


@dataclass(frozen=True)
class RaindropConfig(TaskDegradation):
    name: str = "raindrop"
    count: tuple[int, int] = (8, 40)
    radius_fraction: tuple[float, float] = (0.015, 0.07)  # of the short side
    aspect: tuple[float, float] = (0.7, 1.3)  # height / width
    lens_power: tuple[float, float] = (1.5, 4.0)  # how much wider the view inside a drop is (and flipped)
    blur: tuple[float, float] = (0.5, 2.5)  # defocus of what a drop shows, pixels
    edge: tuple[float, float] = (0.1, 0.35)  # soft-edge width, fraction of the radius
    rim_darkening: tuple[float, float] = (0.05, 0.25)

    task: ClassVar[str] = "raindrop"
    title: ClassVar[str] = "Raindrop removal"
    prompt: ClassVar[str] = "remove raindrops, clean"

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_raindrop(self, rng, hq_size)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_raindrop(image, record)


def sample_raindrop(config: RaindropConfig, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
    width, height = hq_size
    short = min(width, height)
    drops = []
    for _ in range(int(rng.integers(config.count[0], config.count[1] + 1))):
        radius = float(rng.uniform(*config.radius_fraction)) * short
        drops.append(
            {
                "cx": float(rng.uniform(0, width)),
                "cy": float(rng.uniform(0, height)),
                "rx": radius,
                "ry": radius * float(rng.uniform(*config.aspect)),
                "lens_power": float(rng.uniform(*config.lens_power)),
                "blur": float(rng.uniform(*config.blur)),
                "edge": float(rng.uniform(*config.edge)),
                "rim": float(rng.uniform(*config.rim_darkening)),
            }
        )
    return {"drops": drops}


def apply_raindrop(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    out = image.clone()
    height, width = image.shape[-2:]
    blurred: dict[float, torch.Tensor] = {}
    for drop in record["drops"]:
        x0, x1 = max(0, math.floor(drop["cx"] - drop["rx"])), min(width, math.ceil(drop["cx"] + drop["rx"]) + 1)
        y0, y1 = max(0, math.floor(drop["cy"] - drop["ry"])), min(height, math.ceil(drop["cy"] + drop["ry"]) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        ys = torch.arange(y0, y1, dtype=image.dtype, device=image.device)[:, None]
        xs = torch.arange(x0, x1, dtype=image.dtype, device=image.device)[None, :]
        dx, dy = xs - drop["cx"], ys - drop["cy"]
        radius = ((dx / drop["rx"]) ** 2 + (dy / drop["ry"]) ** 2).sqrt()  # 1 on the drop's edge
        alpha = ((1 - radius) / drop["edge"]).clamp(0, 1)
        # a drop is a lens: it shows the scene around it flipped and minified
        src_x = drop["cx"] - dx * drop["lens_power"]
        src_y = drop["cy"] - dy * drop["lens_power"]
        grid = torch.stack(
            [(src_x.expand_as(alpha) + 0.5) / width * 2 - 1, (src_y.expand_as(alpha) + 0.5) / height * 2 - 1], -1
        )
        key = round(drop["blur"], 6)
        if key not in blurred:
            blurred[key] = blur_sigma(image, drop["blur"])
        view = F.grid_sample(blurred[key], grid[None], mode="bilinear", padding_mode="reflection", align_corners=False)
        view = view * (1 - drop["rim"] * radius.clamp(0, 1) ** 4)  # darker towards the rim
        region = out[..., y0:y1, x0:x1]
        out[..., y0:y1, x0:x1] = region * (1 - alpha) + view * alpha
    return out.clamp(0, 1)
