"""Colour correction of a restored image against its (resized) low-quality input.

Diffusion restorers drift in colour; taking the low frequencies from the LQ and the high frequencies from the
result removes the drift while keeping the generated detail. `wavelet` swaps the coarse levels of an a-trous
(stationary) wavelet decomposition; `adain` matches per-channel mean and standard deviation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COLOR_FIX_MODES = ("wavelet", "adain", "none")


def adain_color_fix(image: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match each channel's mean and std of `image` `(B, C, H, W)` to `reference` (same shape)."""
    mean, std = image.mean(dim=(2, 3), keepdim=True), image.std(dim=(2, 3), keepdim=True)
    ref_mean, ref_std = reference.mean(dim=(2, 3), keepdim=True), reference.std(dim=(2, 3), keepdim=True)
    return (image - mean) / (std + eps) * ref_std + ref_mean


def _blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    # 3x3 binomial (B3-spline-like) kernel with holes: one level of the a-trous transform.
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device)
    kernel = (kernel / 16).expand(image.shape[1], 1, 3, 3)
    h, w = image.shape[-2:]
    mode = "reflect" if dilation < min(h, w) else "replicate"
    padded = F.pad(image, (dilation,) * 4, mode=mode)
    return F.conv2d(padded, kernel, groups=image.shape[1], dilation=dilation)


def wavelet_decompose(image: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `image` into `(high, low)` with `high + low == image`; `low` is the residual after `levels` blurs."""
    high = torch.zeros_like(image)
    low = image
    for level in range(levels):
        blurred = _blur(low, 2**level)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_color_fix(image: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """High frequencies of `image` plus low frequencies of `reference`, both `(B, C, H, W)`."""
    high, _ = wavelet_decompose(image, levels)
    _, reference_low = wavelet_decompose(reference, levels)
    return high + reference_low


def apply_color_fix(image: torch.Tensor, reference: torch.Tensor, mode: str = "wavelet") -> torch.Tensor:
    """Dispatch on `mode` (one of `COLOR_FIX_MODES`); tensors are `(B, C, H, W)` of equal shape."""
    if mode == "wavelet":
        return wavelet_color_fix(image, reference)
    if mode == "adain":
        return adain_color_fix(image, reference)
    if mode == "none":
        return image
    raise ValueError(f"`color_fix` must be one of {COLOR_FIX_MODES}, got {mode!r}.")
