"""Every degradation preset behind one contract: `degrade(hq, preset, scale, seed)` and
`apply_degradation(hq, record)`.

Sampling and applying are separate and pure: [`sample_degradation`] draws every random choice from `seed` into a
JSON-plain record (which task, which kernel, which noise seed, ...) and [`apply_degradation`] turns `(hq, record)`
into the LQ with no randomness of its own, so any LQ can be regenerated bit-exactly from its HQ and record.

`scale` is the super-resolution factor: presets of the `sr` task make an LQ of `hq.size // scale`; the other six
tasks keep the size and record `"scale": 1`, so a `mixed` build holds both kinds of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from .family import TaskDegradation, family_of
from .mixed import MixedConfig, draw_task
from .ops import to_image, to_tensor
from .realesrgan import (
    FORMAT_VERSION,
    SR_PRESETS,
    DegradationConfig,
    apply_realesrgan,
    sample_realesrgan,
    sharpened_target,
)
from .table import FAMILIES

PresetConfig = DegradationConfig | TaskDegradation | MixedConfig

# Super-resolution's presets, each same-size family's defaults under its task's name, and the mix of them all.
PRESETS: dict[str, PresetConfig] = {
    **SR_PRESETS,
    **{family.task: family() for family in FAMILIES if issubclass(family, TaskDegradation)},
    "mixed": MixedConfig(),
}


def get_preset(preset: str | PresetConfig) -> PresetConfig:
    if not isinstance(preset, str):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown degradation preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[preset]


def record_task(params: dict[str, Any]) -> str:
    """The task of a record (records made before there were tasks are super-resolution)."""
    return params.get("task", "sr")


@dataclass
class DegradationResult:
    """
    `lq`: the degraded PIL image (HQ size // scale for super-resolution, HQ size otherwise); `params`: the JSON-plain
    record that reproduces it; `hq`: the training target the LQ belongs to (the input, or its unsharp-masked 8-bit
    version when `params["target"]` is `"usm"`). `apply_degradation(hq, params)` gives `lq` again, bit-exactly.
    """

    lq: Image.Image
    params: dict[str, Any] = field(default_factory=dict)
    hq: Image.Image | None = None

    @property
    def task(self) -> str:
        return record_task(self.params)


def sample_degradation(
    preset: str | PresetConfig, hq_size: tuple[int, int], scale: int = 4, seed: int = 0
) -> dict[str, Any]:
    """
    Draw every random choice of one degradation.

    Args:
        preset: A preset name (see `PRESETS`) or its config.
        hq_size: `(width, height)` of the HQ image.
        scale: Super-resolution factor (used by `sr` presets and by `mixed` for its super-resolution pairs).
        seed: Seed of all draws.

    Returns:
        A JSON-plain record for [`apply_degradation`].
    """
    config = get_preset(preset)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"`scale` must be a positive integer, got {scale!r}.")
    if isinstance(config, MixedConfig):
        rng = np.random.default_rng(seed)
        task = draw_task(config, rng)
        task_seed = int(rng.integers(0, 2**31 - 1))
        record = sample_degradation(config.preset_for(task), hq_size, scale, task_seed)
        return {
            **record,
            "preset": config.name,
            "task_preset": record["preset"],
            "task_seed": task_seed,
            "seed": seed,
            "mix": dict(config.weights),
        }
    width, height = hq_size
    if config.task == "sr":
        if width < scale or height < scale:
            raise ValueError(f"The HQ image ({width}x{height}) is smaller than the scale factor {scale}.")
        return sample_realesrgan(config, hq_size, scale, seed)
    rng = np.random.default_rng(seed)
    return {
        "format_version": FORMAT_VERSION,
        "preset": config.name,
        "task": config.task,
        "scale": 1,
        "seed": seed,
        "hq_size": [width, height],
        "usm_sharpen": False,
        "target": "hq",
        config.task: config.sample(rng, (width, height)),
    }


def apply_degradation(hq: Image.Image | torch.Tensor, params: dict[str, Any], device: str | torch.device = "cpu"):
    """
    Degrade `hq` exactly as `params` (from [`sample_degradation`]) says. Deterministic.

    Args:
        hq: RGB PIL image, or a `(1, 3, H, W)` float tensor in [0, 1].
        params: The record; its `hq_size` must match `hq`.
        device: Where to compute (`"cuda"` speeds up large batches of work).

    Returns:
        The LQ as an 8-bit RGB PIL image (`hq_size // scale`).
    """
    if isinstance(hq, Image.Image):
        if hq.mode != "RGB":
            raise ValueError(f"`hq` must be an RGB image, got mode {hq.mode!r}; convert it first.")
        tensor = to_tensor(hq)
    else:
        tensor = hq.float()
    tensor = tensor.to(device)
    height, width = tensor.shape[-2:]
    if [width, height] != list(params["hq_size"]):
        raise ValueError(f"The record was sampled for a {params['hq_size']} image, got {width}x{height}.")
    task = record_task(params)
    if task == "sr":
        return to_image(apply_realesrgan(tensor, params))
    return to_image(family_of(task).apply(tensor, params[task]))


def degrade(
    hq: Image.Image,
    preset: str | PresetConfig = "seesr",
    scale: int = 4,
    seed: int = 0,
    device: str = "cpu",
    sharpen_target: bool | None = None,
) -> DegradationResult:
    """
    Make the LQ partner of `hq` with a seeded degradation.

    Args:
        hq (`PIL.Image.Image`): The high-quality image (converted to RGB if needed).
        preset (`str`, *optional*, defaults to `"seesr"`): A super-resolution preset (`seesr`, `realesrgan`, `mild`),
            a task (`motion_blur`, `low_light`, `underwater`, `denoise`, `raindrop`, `desnow`) or `mixed`.
        scale (`int`, *optional*, defaults to 4): Super-resolution factor: an `sr` LQ is `hq.size // scale`; the other
            tasks keep the size.
        seed (`int`, *optional*, defaults to 0): Seed of every random choice.
        device (`str`, *optional*, defaults to `"cpu"`): Compute device.
        sharpen_target (`bool`, *optional*): Make the unsharp-masked HQ the target (`.hq`) and the LQ's source;
            defaults to the preset's setting (on for `seesr` and `realesrgan`, as they train). Applies to
            super-resolution pairs only (in `mixed`, the others keep the plain HQ).

    Returns:
        [`DegradationResult`] with `.lq` (PIL), `.params` (JSON-serialisable record, its `task` included) and `.hq`
        (the target).
    """
    config = get_preset(preset)
    if hq.mode != "RGB":
        hq = hq.convert("RGB")
    if sharpen_target and not config.usm_sharpen:
        raise ValueError(f"Preset {config.name!r} does not sharpen, so it has no sharpened target to use.")
    params = sample_degradation(config, hq.size, scale=scale, seed=seed)
    task_config = config.preset_for(record_task(params)) if isinstance(config, MixedConfig) else config
    sharpen = task_config.sharpen_target if sharpen_target is None else sharpen_target
    if sharpen and record_task(params) == "sr" and task_config.usm_sharpen:
        hq = sharpened_target(hq, device)
        params.update(usm_sharpen=False, target="usm")  # the LQ is made from the stored, already sharpened target
    return DegradationResult(lq=apply_degradation(hq, params, device=device), params=params, hq=hq)
