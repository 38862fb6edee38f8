"""Denoising task: additive Gaussian, Poisson, or camera-like noise.

The camera-like kind works in linear light: Poisson-Gaussian noise with a separate gain per colour channel (as a
sensor's white balance scales them), back to display gamma, then JPEG, which shapes the residual noise as a camera's
pipeline does. The Gaussian and Poisson kinds are the Real-ESRGAN noise models (`ops.add_noise`) at denoising
strengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .family import TaskDegradation
from .ops import add_noise, jpeg, noise_field

NOISE_KINDS = ("gaussian", "poisson", "camera")


@dataclass(frozen=True)
class NoiseConfig(TaskDegradation):
    name: str = "denoise"
    kind_probs: tuple[float, float, float] = (0.4, 0.2, 0.4)  # gaussian, poisson, camera
    gaussian_sigma: tuple[float, float] = (5.0, 50.0)  # 0-255 scale
    poisson_scale: tuple[float, float] = (1.0, 4.0)
    gray_prob: float = 0.2
    shot_noise: tuple[float, float] = (0.001, 0.01)  # camera: variance per unit of linear signal
    read_noise: tuple[float, float] = (0.002, 0.02)  # camera: standard deviation in linear light
    channel_gain: tuple[float, float] = (1.0, 2.5)  # camera: red and blue gains relative to green
    jpeg_quality: tuple[float, float] = (70.0, 95.0)  # camera

    task: ClassVar[str] = "denoise"
    title: ClassVar[str] = "Denoising"
    prompt: ClassVar[str] = "noise-free, clean, smooth"
    mix_weight: ClassVar[float] = 2.0

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_noise(self, rng)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_noise(image, record)


def sample_noise(config: NoiseConfig, rng: np.random.Generator) -> dict[str, Any]:
    probs = np.asarray(config.kind_probs, dtype=float)
    kind = str(rng.choice(NOISE_KINDS, p=probs / probs.sum()))
    seed = int(rng.integers(0, 2**31 - 1))
    gray = bool(rng.uniform() < config.gray_prob)
    if kind in ("gaussian", "poisson"):  # one `add_noise` record: its strength, then the shared draws
        strength = (
            {"sigma": float(rng.uniform(*config.gaussian_sigma))}
            if kind == "gaussian"
            else {"scale": float(rng.uniform(*config.poisson_scale))}
        )
        return {"kind": kind, "noise": {"type": kind, **strength, "gray": gray, "seed": seed}}
    return {
        "kind": kind,
        "shot_noise": float(rng.uniform(*config.shot_noise)),
        "read_noise": float(rng.uniform(*config.read_noise)),
        "gains": [float(rng.uniform(*config.channel_gain)), 1.0, float(rng.uniform(*config.channel_gain))],
        "jpeg_quality": int(round(rng.uniform(*config.jpeg_quality))),
        "seed": seed,
    }


def apply_noise(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    if record["kind"] != "camera":
        return add_noise(image, record["noise"])
    gains = torch.tensor(record["gains"], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    raw = image.clamp(0, 1) ** 2.2 / gains  # undo white balance: the sensor saw less red and blue
    std = (record["shot_noise"] * raw + record["read_noise"] ** 2).sqrt()
    raw = raw + std * noise_field(tuple(image.shape), record["seed"], image)
    out = (raw * gains).clamp(0, 1) ** (1 / 2.2)
    return jpeg(out, record["jpeg_quality"])
