"""Desnowing task: layers of falling snow over the scene, and the haze that comes with it.

Each layer is a sparse field of flakes (drawn from its recorded seed) with its own density, size, opacity and
motion streak (wind direction shared, length per layer), as in the layered synthesis of Snow100K (Liu et al.,
"DesnowNet", TIP 2018): near layers have few large, blurred flakes, far layers many small ones. A grey veil models
the reduced visibility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .family import TaskDegradation
from .ops import blur_sigma, filter2d, uniform_field


@dataclass(frozen=True)
class SnowConfig(TaskDegradation):
    name: str = "desnow"
    layers: tuple[int, int] = (2, 4)
    density: tuple[float, float] = (0.0005, 0.004)  # flakes per pixel, far layer; nearer layers have fewer
    radius: tuple[float, float] = (0.5, 1.2)  # far layer, pixels; nearer layers are larger
    streak: tuple[float, float] = (0.0, 10.0)  # motion-streak length, pixels
    wind: tuple[float, float] = (-0.7, 0.7)  # streak angle from vertical, radians
    opacity: tuple[float, float] = (0.6, 1.0)
    brightness: tuple[float, float] = (0.85, 1.0)
    haze: tuple[float, float] = (0.0, 0.25)
    haze_light: tuple[float, float] = (0.7, 0.95)

    task: ClassVar[str] = "desnow"
    title: ClassVar[str] = "Desnowing"
    prompt: ClassVar[str] = "remove snowflakes, snow-free"
    keeps_colors: ClassVar[bool] = False

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_snow(self, rng)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_snow(image, record)


def sample_snow(config: SnowConfig, rng: np.random.Generator) -> dict[str, Any]:
    wind = float(rng.uniform(*config.wind))
    layers = []
    count = int(rng.integers(config.layers[0], config.layers[1] + 1))
    for depth in range(count):  # depth 0 = far
        nearness = 1 + 1.5 * depth
        layers.append(
            {
                "density": float(rng.uniform(*config.density)) / nearness**2,
                "radius": float(rng.uniform(*config.radius)) * nearness,
                "streak": float(rng.uniform(*config.streak)) * nearness,
                "angle": wind + float(rng.uniform(-0.1, 0.1)),
                "opacity": float(rng.uniform(*config.opacity)),
                "brightness": float(rng.uniform(*config.brightness)),
                "seed": int(rng.integers(0, 2**31 - 1)),
            }
        )
    return {
        "layers": layers,
        "haze": float(rng.uniform(*config.haze)),
        "haze_light": float(rng.uniform(*config.haze_light)),
    }


def streak_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel of `length` pixels at `angle` from vertical (a 1x1 identity below one pixel)."""
    size = 2 * math.ceil(length / 2) + 1
    kernel = np.zeros((size, size))
    centre = size // 2
    for t in np.linspace(-length / 2, length / 2, max(2, 4 * size)):
        x, y = centre + t * math.sin(angle), centre + t * math.cos(angle)
        kernel[min(size - 1, max(0, round(y))), min(size - 1, max(0, round(x)))] += 1
    return kernel / kernel.sum()


def apply_snow(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    b, _, height, width = image.shape
    out = image * (1 - record["haze"]) + record["haze"] * record["haze_light"]
    for layer in record["layers"]:
        seeds = (uniform_field((b, 1, height, width), layer["seed"], image) < layer["density"]).to(image.dtype)
        flakes = blur_sigma(seeds, layer["radius"]) * max(1.0, 2 * math.pi * layer["radius"] ** 2)  # peak ~1
        if layer["streak"] >= 1:
            flakes = filter2d(flakes, streak_kernel(layer["streak"], layer["angle"])) * math.sqrt(layer["streak"])
        alpha = (flakes * layer["opacity"]).clamp(0, 1)
        out = out * (1 - alpha) + layer["brightness"] * alpha
    return out.clamp(0, 1)
