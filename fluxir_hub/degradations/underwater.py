"""Underwater enhancement task: wavelength-dependent attenuation and backscatter over a depth ramp.

The image-formation model of Akkaynak and Treibitz ("A revised underwater image formation model", CVPR 2018):
`I = J * exp(-beta_D * d) + B * (1 - exp(-beta_B * d))` per colour channel, with red absorbed fastest, a blue-green
veiling light `B`, and a range `d` that grows linearly across the frame in a random direction (near to far). A light
forward-scattering blur follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .family import TaskDegradation
from .ops import blur_sigma


@dataclass(frozen=True)
class UnderwaterConfig(TaskDegradation):
    name: str = "underwater"
    near: tuple[float, float] = (0.5, 3.0)  # metres
    far: tuple[float, float] = (3.0, 10.0)
    attenuation: tuple[tuple[float, float], ...] = ((0.25, 0.6), (0.03, 0.12), (0.02, 0.1))  # beta_D per metre, RGB
    backscatter: tuple[tuple[float, float], ...] = ((0.1, 0.5), (0.1, 0.5), (0.1, 0.5))  # beta_B per metre, RGB
    veiling_light: tuple[tuple[float, float], ...] = ((0.0, 0.15), (0.3, 0.6), (0.4, 0.75))  # B, RGB
    forward_scatter_sigma: tuple[float, float] = (0.0, 1.5)  # pixels

    task: ClassVar[str] = "underwater"
    title: ClassVar[str] = "Underwater enhancement"
    prompt: ClassVar[str] = "clear, reduce backscatter, restore colors"
    keeps_colors: ClassVar[bool] = False

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_underwater(self, rng)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_underwater(image, record)


def sample_underwater(config: UnderwaterConfig, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "near": float(rng.uniform(*config.near)),
        "far": float(rng.uniform(*config.far)),
        "angle": float(rng.uniform(-math.pi, math.pi)),
        "attenuation": [float(rng.uniform(*r)) for r in config.attenuation],
        "backscatter": [float(rng.uniform(*r)) for r in config.backscatter],
        "veiling_light": [float(rng.uniform(*r)) for r in config.veiling_light],
        "forward_scatter_sigma": float(rng.uniform(*config.forward_scatter_sigma)),
    }


def depth_ramp(height: int, width: int, near: float, far: float, angle: float, like: torch.Tensor) -> torch.Tensor:
    """`(1, 1, H, W)` range in metres growing linearly from `near` to `far` along direction `angle`."""
    ys = torch.linspace(-1, 1, height, dtype=like.dtype, device=like.device)[:, None]
    xs = torch.linspace(-1, 1, width, dtype=like.dtype, device=like.device)[None, :]
    along = xs * math.cos(angle) + ys * math.sin(angle)
    along = (along - along.min()) / (along.max() - along.min()).clamp_min(1e-6)
    return (near + (far - near) * along)[None, None]


def apply_underwater(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    depth = depth_ramp(*image.shape[-2:], record["near"], record["far"], record["angle"], image)

    def per_channel(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)

    direct = image * torch.exp(-per_channel(record["attenuation"]) * depth)
    veil = per_channel(record["veiling_light"]) * (1 - torch.exp(-per_channel(record["backscatter"]) * depth))
    return blur_sigma(direct + veil, record["forward_scatter_sigma"]).clamp(0, 1)
