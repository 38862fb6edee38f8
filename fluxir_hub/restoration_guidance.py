"""Restoration sampling strategy of paper 004 (Eq. 1-2), written for flow matching.

After each sampler step the latent is pulled toward the clean LQ latent:

    z <- z + w * g(x) * (z_lq - z),   g(x) = (x - a) / (1 - a) if x > a else 0,

so only the early, noisy part of the trajectory is pulled: the LQ fixes layout and colour, later steps add detail. The
paper uses w = 0.05 and a = 0.8; w = 0 switches the strategy off. What `x` is ("the clock"):

- `"step"` (default, as paper 004 writes it): `x = t / T`, the fraction of the sampling steps still to go, 1 at the
  first step. With a = 0.8 the strategy acts on the first 20 % of the steps (4 of 20), whatever the resolution.
- `"sigma"`: `x` is the flow time (noise level) at which the step evaluated the model. FLUX shifts its schedule toward
  noise for large images, so at 1024x1024 and 20 steps this acts on 9 steps and pulls about twice as hard in total
  (see [`total_pull`]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_RESTORATION_WEIGHT = 0.05
DEFAULT_RESTORATION_THRESHOLD = 0.8
RESTORATION_SCHEDULES = ("step", "sigma")


def restoration_gate(x: float, threshold: float = DEFAULT_RESTORATION_THRESHOLD) -> float:
    """`g(x)` of paper 004 Eq. 2: 0 up to `threshold`, then rising linearly to 1 at x = 1."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"`restoration_threshold` must be in [0, 1), got {threshold}.")
    return (x - threshold) / (1.0 - threshold) if x > threshold else 0.0


def restoration_clock(sigmas: Sequence[float], num_inference_steps: int, schedule: str = "step") -> list[float]:
    """
    `x` of every step: `1 - i / T` for step `i` of `T` (`"step"`), or the step's flow time `sigmas[i]` (`"sigma"`).
    """
    if schedule not in RESTORATION_SCHEDULES:
        raise ValueError(f"`restoration_schedule` must be one of {RESTORATION_SCHEDULES}, got {schedule!r}.")
    if schedule == "step":
        return [1.0 - i / num_inference_steps for i in range(num_inference_steps)]
    return [float(s) for s in list(sigmas)[:num_inference_steps]]


def total_pull(clock: Sequence[float], weight: float, threshold: float = DEFAULT_RESTORATION_THRESHOLD) -> float:
    """The fraction of the way to the LQ latent that the whole trajectory is pulled, all steps together:
    `1 - prod_i (1 - w g(x_i))` (what the strategy alone would do to a latent that did not move otherwise)."""
    remaining = 1.0
    for x in clock:
        remaining *= 1.0 - weight * restoration_gate(x, threshold)
    return 1.0 - remaining


def apply_restoration_guidance(
    latents: torch.Tensor,
    lq_latents: torch.Tensor,
    x: float,
    weight: float = DEFAULT_RESTORATION_WEIGHT,
    threshold: float = DEFAULT_RESTORATION_THRESHOLD,
) -> torch.Tensor:
    """Paper 004 Eq. 1: move `latents` a fraction `weight * g(x)` of the way to `lq_latents` (same shape)."""
    factor = weight * restoration_gate(x, threshold)
    if factor == 0.0:
        return latents
    return latents + factor * (lq_latents.to(latents.dtype) - latents)
