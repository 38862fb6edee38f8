"""Low-light enhancement task: an exposure and gamma drop in linear light, then signal-dependent sensor noise.

The HQ is taken to linear light (display gamma), scaled down by an exposure factor and bent by an extra gamma, and
given Poisson-Gaussian noise (shot noise whose variance grows with the signal, plus read noise), the usual synthetic
low-light model (e.g. Lv et al., "Attention guided low-light image enhancement", IJCV 2021). All noise comes from the
recorded seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .ops import noise_field


@dataclass(frozen=True)
class LowLightConfig:
    name: str = "low_light"
    display_gamma: float = 2.2
    exposure: tuple[float, float] = (0.05, 0.3)  # fraction of the light that reaches the sensor
    extra_gamma: tuple[float, float] = (1.0, 1.5)  # >1 crushes the shadows further
    shot_noise: tuple[float, float] = (0.0005, 0.005)  # variance per unit of linear signal
    read_noise: tuple[float, float] = (0.0005, 0.005)  # standard deviation in linear light

    task: ClassVar[str] = "low_light"
    usm_sharpen: ClassVar[bool] = False
    sharpen_target: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_low_light(config: LowLightConfig, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "display_gamma": config.display_gamma,
        "exposure": float(rng.uniform(*config.exposure)),
        "extra_gamma": float(rng.uniform(*config.extra_gamma)),
        "shot_noise": float(rng.uniform(*config.shot_noise)),
        "read_noise": float(rng.uniform(*config.read_noise)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def apply_low_light(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    linear = image.clamp(0, 1) ** record["display_gamma"]
    dark = record["exposure"] * linear ** record["extra_gamma"]
    std = (record["shot_noise"] * dark + record["read_noise"] ** 2).sqrt()
    noisy = (dark + std * noise_field(tuple(image.shape), record["noise_seed"], image)).clamp(0, 1)
    return noisy ** (1 / record["display_gamma"])
