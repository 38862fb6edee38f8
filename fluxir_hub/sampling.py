"""Restoration sampling strategy of paper 004 (Eq. 1-2), written for flow matching.

After each sampler step the latent is pulled toward the clean LQ latent:

    z <- z + w * g(s) * (z_lq - z),   g(s) = (s - a) / (1 - a) if s > a else 0,

with `s` in [0, 1] the flow time (1 = pure noise) at which the step evaluated the model, as paper 004 evaluates
g at the timestep whose denoised latent it corrects. Only the noisy early part of the
trajectory (s > a) is pulled, so the LQ fixes layout and colour while late steps stay free to add detail. The paper
uses w = 0.05 and a = 0.8; w = 0 switches the strategy off.
"""

from __future__ import annotations

import torch

DEFAULT_RESTORATION_WEIGHT = 0.05
DEFAULT_RESTORATION_THRESHOLD = 0.8


def restoration_gate(s: float, threshold: float = DEFAULT_RESTORATION_THRESHOLD) -> float:
    """`g(s)` of paper 004 Eq. 2: 0 up to `threshold`, then rising linearly to 1 at s = 1."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"`restoration_threshold` must be in [0, 1), got {threshold}.")
    return (s - threshold) / (1.0 - threshold) if s > threshold else 0.0


def apply_restoration_guidance(
    latents: torch.Tensor,
    lq_latents: torch.Tensor,
    s: float,
    weight: float = DEFAULT_RESTORATION_WEIGHT,
    threshold: float = DEFAULT_RESTORATION_THRESHOLD,
) -> torch.Tensor:
    """Paper 004 Eq. 1: move `latents` a fraction `weight * g(s)` of the way to `lq_latents` (same shape)."""
    factor = weight * restoration_gate(s, threshold)
    if factor == 0.0:
        return latents
    return latents + factor * (lq_latents.to(latents.dtype) - latents)
