"""Super-resolution task: the second-order Real-ESRGAN degradation (blur -> resize -> noise -> JPEG, twice, then sinc + JPEG), as used by SeeSR
to make LQ/HQ pairs (paper 001 §3.1 and supplementary §7; SPEC §3.4 lists the numbers).

Sampling and applying are separate and pure:

- [`sample_realesrgan`] draws every random choice from `seed` into a JSON-plain record (kernel specs, resize
  factors and sizes, noise type/strength and the seed of the noise field, JPEG qualities, the order of the last
  stage);
- [`apply_realesrgan`] turns `(hq, record)` into the LQ image with no randomness of its own.

So any LQ can be regenerated bit-exactly from its HQ, preset and seed, or from the stored record alone.

Where the presets follow SeeSR and Real-ESRGAN, the training *target* is the unsharp-masked HQ, as theirs is
(`sharpen_target`): `degrade` returns it as `.hq` (8-bit), makes the LQ from exactly that image, and records
`"target": "usm"`, so `apply_degradation(result.hq, result.params)` replays the LQ bit-exactly from the stored pair.

Departures from BasicSR's code, on purpose: kernels and USM run on torch (CPU or GPU) with the same formulas; the
USM blur is separable; noise fields are drawn on the CPU from recorded seeds so a record replays on any device.

```py
from fluxir_hub.degradations import degrade  # or: from dataset_builder import degrade

result = degrade(hq_image, preset="seesr", scale=4, seed=0)
result.lq.save("lq.png"); json.dumps(result.params)
```
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from .family import TaskFamily
from .kernels import KERNEL_TYPES, make_kernel
from .ops import add_noise, filter2d, jpeg, resize, to_image, to_tensor, usm_sharpen

# 2: USM mask per channel (as BasicSR), the sharpened target. Version-1 records still replay as they were made.
FORMAT_VERSION = 2
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class StageConfig:
    """Random ranges of one degradation stage (Real-ESRGAN names in brackets)."""

    blur_prob: float = 1.0  # [second_blur_prob] stage 1 always blurs
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)  # [kernel_range]
    kernel_types: tuple[str, ...] = KERNEL_TYPES  # [kernel_list]
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # [kernel_prob]
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    beta_gaussian: tuple[float, float] = (0.5, 4.0)  # [betag_range]
    beta_plateau: tuple[float, float] = (1.0, 2.0)  # [betap_range]
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up / down / keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # otherwise Poisson
    noise_sigma: tuple[float, float] = (1.0, 30.0)  # on the 0-255 scale
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple[float, float] = (30.0, 95.0)


@dataclass(frozen=True)
class DegradationConfig(TaskFamily):
    """A full second-order degradation preset: the super-resolution family."""

    name: str
    stage1: StageConfig
    stage2: StageConfig
    final_sinc_prob: float = 0.8
    final_kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    usm_sharpen: bool = True  # the LQ is made from the unsharp-masked HQ, as in Real-ESRGAN's training
    sharpen_target: bool = True  # ...and that sharpened HQ is the training target too (SeeSR, Real-ESRGAN)

    task: ClassVar[str] = "sr"
    title: ClassVar[str] = "Super-resolution (real-world)"
    prompt: ClassVar[str] = "high-resolution, ultra-sharp, detailed"
    resizes: ClassVar[bool] = True
    mix_weight: ClassVar[float] = 5.0

    @classmethod
    def preset_name(cls) -> str:
        return "seesr"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# SeeSR's `blur_kernel_size2 = 11` setting is never read by its code: stage 2 draws sizes from 7..21 like stage 1.
_SEESR_STAGE2 = StageConfig(
    blur_prob=0.8,
    blur_sigma=(0.2, 1.5),
    resize_probs=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_sigma=(1.0, 25.0),
    poisson_scale=(0.05, 2.5),
)

SR_PRESETS: dict[str, DegradationConfig] = {
    # SeeSR's pair maker, as its code runs (its settings file is Real-ESRGAN x4plus's: the two agree).
    "seesr": DegradationConfig(name="seesr", stage1=StageConfig(), stage2=_SEESR_STAGE2),
    # Real-ESRGAN x4plus's own options.
    "realesrgan": DegradationConfig(name="realesrgan", stage1=StageConfig(), stage2=_SEESR_STAGE2),
    # SeeSR's milder params file: narrower resize, less noise, higher JPEG quality, rarer 2nd blur, no USM.
    "mild": DegradationConfig(
        name="mild",
        stage1=StageConfig(
            resize_range=(0.3, 1.5), noise_sigma=(1.0, 15.0), poisson_scale=(0.05, 2.0), jpeg_quality=(60.0, 95.0)
        ),
        stage2=replace(
            _SEESR_STAGE2,
            blur_prob=0.5,
            resize_range=(0.6, 1.2),
            noise_sigma=(1.0, 12.0),
            poisson_scale=(0.05, 1.0),
            jpeg_quality=(60.0, 100.0),
        ),
        usm_sharpen=False,
        sharpen_target=False,
    ),
}


# ---------------------------------------------------------------------------------------------------- sampling
def _sample_kernel(rng: np.random.Generator, stage: StageConfig) -> dict[str, Any]:
    size = int(rng.choice(stage.kernel_sizes))
    if rng.uniform() < stage.sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5  # small kernels cannot hold very low cut-offs
        return {"type": "sinc", "size": size, "omega_c": float(rng.uniform(low, math.pi))}
    kind = str(rng.choice(stage.kernel_types, p=np.asarray(stage.kernel_probs) / sum(stage.kernel_probs)))
    sigma_x = float(rng.uniform(*stage.blur_sigma))
    spec: dict[str, Any] = {"type": kind, "size": size, "sigma_x": sigma_x, "sigma_y": sigma_x, "rotation": 0.0}
    if kind.endswith("aniso"):
        spec["sigma_y"] = float(rng.uniform(*stage.blur_sigma))
        spec["rotation"] = float(rng.uniform(-math.pi, math.pi))
    if kind.startswith("generalized"):
        low, high = stage.beta_gaussian
        spec["beta"] = float(rng.uniform(low, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, high))
    elif kind.startswith("plateau"):
        # as BasicSR draws it: half the draws from [low, 1), i.e. exactly 1 for its [1, 2] range, half from [1, high)
        low, high = stage.beta_plateau
        spec["beta"] = float(rng.uniform(low, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, high))
    return spec


def _sample_resize(rng: np.random.Generator, stage: StageConfig) -> dict[str, Any]:
    direction = str(rng.choice(["up", "down", "keep"], p=stage.resize_probs))
    low, high = stage.resize_range
    factor = {"up": lambda: rng.uniform(1.0, high), "down": lambda: rng.uniform(low, 1.0), "keep": lambda: 1.0}
    return {"direction": direction, "factor": float(factor[direction]()), "mode": str(rng.choice(RESIZE_MODES))}


def _sample_noise(rng: np.random.Generator, stage: StageConfig) -> dict[str, Any]:
    gray = bool(rng.uniform() < stage.gray_noise_prob)
    if rng.uniform() < stage.gaussian_noise_prob:
        noise = {"type": "gaussian", "sigma": float(rng.uniform(*stage.noise_sigma))}
    else:
        noise = {"type": "poisson", "scale": float(rng.uniform(*stage.poisson_scale))}
    return {**noise, "gray": gray, "seed": int(rng.integers(0, 2**31 - 1))}


def sample_realesrgan(
    config: DegradationConfig, hq_size: tuple[int, int], scale: int = 4, seed: int = 0
) -> dict[str, Any]:
    """
    Draw every random choice of one second-order degradation.

    Args:
        config: The preset.
        hq_size: `(width, height)` of the HQ image (the record stores the exact intermediate sizes).
        scale: Downscaling factor of the final LQ.
        seed: Seed of all draws.

    Returns:
        A JSON-plain record for [`apply_realesrgan`].
    """
    width, height = hq_size
    rng = np.random.default_rng(seed)

    s1, s2 = config.stage1, config.stage2
    stage1 = {"kernel": _sample_kernel(rng, s1), "resize": _sample_resize(rng, s1), "noise": _sample_noise(rng, s1)}
    stage1["jpeg_quality"] = int(round(rng.uniform(*s1.jpeg_quality)))
    # Sizes follow F.interpolate(scale_factor=...) for stage 1 and an explicit size for stage 2, as Real-ESRGAN.
    stage1["size"] = [
        max(1, int(height * stage1["resize"]["factor"])),
        max(1, int(width * stage1["resize"]["factor"])),
    ]

    blur2 = bool(rng.uniform() < s2.blur_prob)
    stage2 = {"blur": blur2, "kernel": _sample_kernel(rng, s2) if blur2 else None, "resize": _sample_resize(rng, s2)}
    stage2["noise"] = _sample_noise(rng, s2)
    stage2["jpeg_quality"] = None  # stage 2's JPEG is the final one, below
    factor2 = stage2["resize"]["factor"]
    stage2["size"] = [max(1, int(height / scale * factor2)), max(1, int(width / scale * factor2))]

    sinc = None
    if rng.uniform() < config.final_sinc_prob:
        size = int(rng.choice(config.final_kernel_sizes))
        sinc = {"type": "sinc", "size": size, "omega_c": float(rng.uniform(math.pi / 3, math.pi))}
    final = {
        "order": "resize_sinc_then_jpeg" if rng.uniform() < 0.5 else "jpeg_then_resize_sinc",
        "resize_mode": str(rng.choice(RESIZE_MODES)),
        "sinc": sinc,
        "jpeg_quality": int(round(rng.uniform(*s2.jpeg_quality))),
        "size": [height // scale, width // scale],
    }
    return {
        "format_version": FORMAT_VERSION,
        "preset": config.name,
        "task": "sr",
        "scale": scale,
        "seed": seed,
        "hq_size": [width, height],
        "usm_sharpen": config.usm_sharpen,
        "target": "hq",  # degrade() records "usm" when the LQ belongs to the sharpened target
        "stage1": stage1,
        "stage2": stage2,
        "final": final,
    }


def apply_realesrgan(tensor: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Degrade a `(1, 3, H, W)` image in [0, 1] exactly as `params` (from [`sample_realesrgan`]) says."""
    per_channel = params.get("format_version", 1) >= 2
    out = usm_sharpen(tensor, per_channel_mask=per_channel) if params["usm_sharpen"] else tensor
    s1, s2, final = params["stage1"], params["stage2"], params["final"]

    out = filter2d(out, make_kernel(s1["kernel"]))
    out = resize(out, s1["size"], s1["resize"]["mode"])
    out = add_noise(out, s1["noise"])
    out = jpeg(out, s1["jpeg_quality"])

    if s2["blur"]:
        out = filter2d(out, make_kernel(s2["kernel"]))
    out = resize(out, s2["size"], s2["resize"]["mode"])
    out = add_noise(out, s2["noise"])

    def resize_and_sinc(x: torch.Tensor) -> torch.Tensor:
        x = resize(x, final["size"], final["resize_mode"])
        return filter2d(x, make_kernel(final["sinc"])) if final["sinc"] else x

    if final["order"] == "resize_sinc_then_jpeg":
        out = jpeg(resize_and_sinc(out), final["jpeg_quality"])
    else:
        out = resize_and_sinc(jpeg(out, final["jpeg_quality"]))

    return out


def sharpened_target(hq: Image.Image, device: str | torch.device = "cpu") -> Image.Image:
    """The unsharp-masked HQ as an 8-bit RGB image: the training target of the USM presets."""
    return to_image(usm_sharpen(to_tensor(hq.convert("RGB")).to(device)))
