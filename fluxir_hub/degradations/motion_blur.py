"""Motion deblurring task: camera-shake blur along a random trajectory, plus faint sensor noise.

The trajectory is the random walk of Boracchi and Foi ("Modeling the performance of image restoration from motion
blur", TIP 2012; the model behind DeblurGAN's synthetic kernels), as their generator runs it: 2000 points of a
particle whose velocity gets Gaussian jitter, a centripetal pull back to the start and rare abrupt reversals, each
step renormalised to a fixed length, with the "anxiety" drawn from DeblurGAN's list (0.001 to 0.01). It is rasterised
with bilinear (sub-pixel) weights and centred on its mean so the blur does not shift the image. On 200 seeded draws
its end-to-end distance is 0.15 of its path length and the kernels' minor/major axis ratio 0.45, as for the reference
(`tests/test_tasks.py`).

Scale, as the reference draws it: a 60-pixel path on 256-pixel training images, of which the exposure keeps the first
1/10, 1/2 or the whole (DeblurGAN's `part` of its PSF list). Here the path is 60/256 of the image's shorter side, so
the blur covers the same share of any image (median extent along its main axis ~12 px on a 256 px image; the first
version drew ~6). Kernels as large as that are applied by FFT.

A record stores the kernel's nonzero entries (format 3, rounded; replayed exactly). Records written before (format 2:
the dense kernel; format 1: 64 straight-ish points in `trajectory`) still replay as they were made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .family import TaskDegradation
from .ops import add_noise, filter2d


@dataclass(frozen=True)
class MotionBlurConfig(TaskDegradation):
    """Ranges of the camera-shake model; the path's length is relative to the image's shorter side."""

    name: str = "motion_blur"
    path_fraction: float = 60 / 256  # the reference's 60 px path on its 256 px training images
    exposure: tuple[float, ...] = (0.1, 0.5, 1.0)  # share of the path the shutter sees (DeblurGAN's PSF parts)
    anxiety: tuple[float, ...] = (0.001, 0.002, 0.003, 0.005, 0.007, 0.008, 0.009, 0.01)  # DeblurGAN's choices
    points: int = 2000
    noise_sigma: tuple[float, float] = (0.0, 3.0)  # Gaussian read noise on the 0-255 scale

    task: ClassVar[str] = "motion_blur"
    title: ClassVar[str] = "Motion deblurring"
    prompt: ClassVar[str] = "sharp, deblurred, clear"
    mix_weight: ClassVar[float] = 2.0

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        return sample_motion_blur(self, rng, hq_size)

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return apply_motion_blur(image, record)


REFERENCE_LENGTH = 60.0  # the reference generator's path length (pixels on its 64 px canvas)
KERNEL_DECIMALS = 7  # a stored kernel's rounding; replay applies exactly the stored values


def shake_trajectory(rng: np.random.Generator, points: int, length: float, anxiety: float) -> np.ndarray:
    """`(points, 2)` positions (x, y) of a camera-shake path `length` pixels long, centred on its mean: Boracchi and
    Foi's walk at the reference scale, then scaled."""
    step = REFERENCE_LENGTH / (points - 1)
    centripetal = 0.7 * rng.uniform()
    big_shake_prob = 0.2 * rng.uniform()
    gaussian_shake = 10 * rng.uniform()
    angle = 2 * math.pi * rng.uniform()
    velocity = complex(math.cos(angle), math.sin(angle)) * (anxiety if anxiety > 0 else step)
    path = np.zeros(points, dtype=complex)
    normal = rng.standard_normal((points - 1, 2))
    for t in range(points - 1):
        jump = 0j
        if rng.uniform() < big_shake_prob * anxiety:  # an abrupt reversal, rare
            turn = math.pi + rng.uniform() - 0.5
            jump = 2 * velocity * complex(math.cos(turn), math.sin(turn))
        jitter = complex(normal[t, 0], normal[t, 1])
        velocity = velocity + jump + anxiety * (gaussian_shake * jitter - centripetal * path[t]) * step
        velocity = velocity / (abs(velocity) + 1e-12) * step
        path[t + 1] = path[t] + velocity
    path = (path - path.mean()) * (length / REFERENCE_LENGTH)
    return np.stack([path.real, path.imag], axis=1)


def trajectory_kernel(trajectory, size: int) -> np.ndarray:
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


def sample_motion_blur(config: MotionBlurConfig, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
    length = config.path_fraction * min(hq_size)
    anxiety = float(rng.choice(config.anxiety))
    exposure = float(rng.choice(config.exposure))
    path = shake_trajectory(rng, config.points, length, anxiety)
    seen = path[: max(2, round(exposure * config.points))]  # the part of the shake the shutter was open for
    seen = seen - seen.mean(axis=0)
    size = 2 * math.ceil(np.abs(seen).max()) + 3  # odd, the whole path inside, its mean at the centre
    kernel = np.round(trajectory_kernel(seen, size), KERNEL_DECIMALS)
    rows, cols = np.nonzero(kernel)
    return {
        "format": 3,
        "kernel_size": size,
        "length": round(length * exposure, 4),
        "anxiety": anxiety,
        "kernel_entries": [[int(r), int(c), float(kernel[r, c])] for r, c in zip(rows, cols, strict=True)],
        "noise": {
            "type": "gaussian",
            "sigma": float(rng.uniform(*config.noise_sigma)),
            "gray": False,
            "seed": int(rng.integers(0, 2**31 - 1)),
        },
    }


def record_kernel(record: dict[str, Any]) -> np.ndarray:
    """The normalised kernel a record applies (format 3 stores its nonzero entries, 2 the kernel, 1 the trajectory)."""
    size = record["kernel_size"]
    if "kernel_entries" in record:
        kernel = np.zeros((size, size), dtype=np.float64)
        for row, col, weight in record["kernel_entries"]:
            kernel[row, col] = weight
    elif "kernel" in record:
        kernel = np.asarray(record["kernel"], dtype=np.float64)
    else:
        return trajectory_kernel(record["trajectory"], size)
    return kernel / kernel.sum()


def apply_motion_blur(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
    out = filter2d(image, record_kernel(record))
    return add_noise(out, record["noise"])
