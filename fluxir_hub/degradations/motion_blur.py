"""Motion deblurring task: camera-shake blur along a random trajectory, plus faint sensor noise.

The trajectory is the random walk of Boracchi and Foi ("Modeling the performance of image restoration from motion
blur", TIP 2012; the model behind DeblurGAN's synthetic kernels): an inertial velocity with Gaussian jitter, a
centripetal pull back to the start and rare abrupt shakes. The record stores the trajectory's points, so a kernel
replays without re-running the walk; the points are centred on their mean so the blur does not shift the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .ops import add_noise, filter2d


@dataclass(frozen=True)
class MotionBlurConfig:
    """Ranges of the camera-shake model (kernel sizes in pixels of the HQ image)."""

    name: str = "motion_blur"
    kernel_sizes: tuple[int, ...] = (9, 13, 17, 21, 25, 29)
    length_fraction: tuple[float, float] = (0.5, 1.0)  # path length relative to the kernel size
    anxiety: tuple[float, float] = (0.0, 0.005)  # how shaky the hand is (Boracchi-Foi)
    points: int = 64
    noise_sigma: tuple[float, float] = (0.0, 3.0)  # Gaussian read noise on the 0-255 scale

    task: ClassVar[str] = "motion_blur"
    usm_sharpen: ClassVar[bool] = False
    sharpen_target: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shake_trajectory(rng: np.random.Generator, points: int, length: float, anxiety: float) -> np.ndarray:
    """`(points, 2)` positions (x, y) of a camera-shake path of about `length` pixels, centred on its mean."""
    step = length / (points - 1)
    centripetal = 0.7 * rng.uniform()
    big_shake_prob = 0.2 * rng.uniform()
    gaussian_shake = 10 * rng.uniform()
    angle = 2 * math.pi * rng.uniform()
    velocity = complex(math.cos(angle), math.sin(angle)) * step
    path = np.zeros(points, dtype=complex)
    for t in range(points - 1):
        jump = 0j
        if rng.uniform() < big_shake_prob * anxiety:
            jump = (
                2
                * velocity
                * complex(math.cos(math.pi + rng.uniform() - 0.5), math.sin(math.pi + rng.uniform() - 0.5))
            )
        jitter = complex(rng.standard_normal(), rng.standard_normal())
        velocity = velocity + jump + anxiety * (gaussian_shake * jitter - centripetal * path[t]) * step
        velocity = velocity / (abs(velocity) + 1e-12) * step
        path[t + 1] = path[t] + velocity
    path -= path.mean()
    return np.stack([path.real, path.imag], axis=1)


def trajectory_kernel(trajectory: list[list[float]], size: int) -> np.ndarray:
    """Rasterise a centred path into a normalised `(size, size)` kernel with bilinear splatting."""
    kernel = np.zeros((size, size), dtype=np.float64)
    centre = size // 2
    for x, y in trajectory:
        # a path longer than the kernel is clipped at its border rather than wrapped
        px, py = min(max(x + centre, 0.0), size - 1.0), min(max(y + centre, 0.0), size - 1.0)
        x0, y0 = int(math.floor(px)), int(math.floor(py))
        fx, fy = px - x0, py - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if w > 0:
                kernel[min(y0 + dy, size - 1), min(x0 + dx, size - 1)] += w
    return kernel / kernel.sum()


def sample_motion_blur(config: MotionBlurConfig, rng: np.random.Generator) -> dict[str, Any]:
    size = int(rng.choice(config.kernel_sizes))
    length = float(rng.uniform(*config.length_fraction)) * (size - 1)
    anxiety = float(rng.uniform(*config.anxiety))
    trajectory = shake_trajectory(rng, config.points, length, anxiety)
    return {
        "kernel_size": size,
        "trajectory": [[round(float(x), 4), round(float(y), 4)] for x, y in trajectory],
        "noise": {"type": "gaussian", "sigma": float(rng.uniform(*config.noise_sigma)), "gray": False,
                  "seed": int(rng.integers(0, 2**31 - 1))},
    }  # fmt: skip


def apply_motion_blur(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    out = filter2d(image, trajectory_kernel(record["trajectory"], record["kernel_size"]))
    return add_noise(out, record["noise"])
