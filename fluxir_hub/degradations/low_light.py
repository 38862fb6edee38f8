"""Low-light enhancement task: a darkening that follows Lv et al., then signal-dependent sensor noise.

Lv et al. ("Attention guided low-light image enhancement with a large scale low-light simulation dataset", IJCV 2021,
Eq. 1) darken an image with a linear and a gamma transform, `I_low = beta * (alpha * I) ** gamma`, on display values,
with `alpha ~ U(0.9, 1)`, `beta ~ U(0.5, 1)`, `gamma ~ U(1.5, 5)` (as we read their paper, which is not in this
project's copy of the papers; the ranges are the config's defaults). Poisson-Gaussian noise (shot noise whose variance
grows with the signal, plus read noise) is then added in linear light. On scikit-image's coffee photo this keeps 0.32
of the mean brightness (0.30 over astronaut, chelsea and coffee; `tests/test_tasks.py`). All noise comes from the
recorded seed.

`model="exposure"` is the earlier model (an exposure factor and an extra gamma in linear light, 0.40 of the mean
brightness: brighter than Lv et al.'s); records without a `model` were made with it and replay with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .family import TaskDegradation
from .ops import noise_field


@dataclass(frozen=True)
class LowLightConfig(TaskDegradation):
    name: str = "low_light"
    model: str = "lv2021"  # or "exposure" (the earlier model)
    alpha: tuple[float, float] = (0.9, 1.0)  # lv2021: linear scale before the gamma
    beta: tuple[float, float] = (0.5, 1.0)  # lv2021: linear scale after it
    gamma: tuple[float, float] = (1.5, 5.0)  # lv2021: the darkening gamma on display values
    display_gamma: float = 2.2
    exposure: tuple[float, float] = (0.05, 0.3)  # exposure model: fraction of the light that reaches the sensor
    extra_gamma: tuple[float, float] = (1.0, 1.5)  # exposure model: >1 crushes the shadows further
    shot_noise: tuple[float, float] = (0.0005, 0.005)  # variance per unit of linear signal
    read_noise: tuple[float, float] = (0.0005, 0.005)  # standard deviation in linear light

    task: ClassVar[str] = "low_light"
    title: ClassVar[str] = "Low-light enhancement"
    prompt: ClassVar[str] = "bright, clear, vivid"
    keeps_colors: ClassVar[bool] = False

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_low_light(self, rng)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_low_light(image, record)


def sample_low_light(config: LowLightConfig, rng: np.random.Generator) -> dict[str, Any]:
    if config.model not in ("lv2021", "exposure"):
        raise ValueError(f"The low-light model must be 'lv2021' or 'exposure', got {config.model!r}.")
    if config.model == "lv2021":
        darkening = {
            "model": "lv2021",
            "alpha": float(rng.uniform(*config.alpha)),
            "beta": float(rng.uniform(*config.beta)),
            "gamma": float(rng.uniform(*config.gamma)),
        }
    else:
        darkening = {
            "exposure": float(rng.uniform(*config.exposure)),
            "extra_gamma": float(rng.uniform(*config.extra_gamma)),
        }
    return {
        "display_gamma": config.display_gamma,
        **darkening,
        "shot_noise": float(rng.uniform(*config.shot_noise)),
        "read_noise": float(rng.uniform(*config.read_noise)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def apply_low_light(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    if record.get("model") == "lv2021":  # Lv et al. Eq. 1 on display values, then to linear light for the noise
        display = record["beta"] * (record["alpha"] * image.clamp(0, 1)) ** record["gamma"]
        dark = display ** record["display_gamma"]
    else:  # the exposure model (records without a `model` were made with it)
        linear = image.clamp(0, 1) ** record["display_gamma"]
        dark = record["exposure"] * linear ** record["extra_gamma"]
    std = (record["shot_noise"] * dark + record["read_noise"] ** 2).sqrt()
    noisy = (dark + std * noise_field(tuple(image.shape), record["noise_seed"], image)).clamp(0, 1)
    return noisy ** (1 / record["display_gamma"])
