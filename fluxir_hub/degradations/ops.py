"""Image operations shared by the degradation families: filtering, noise, JPEG, resizing and tensor conversion.

All work on `(B, C, H, W)` float tensors in [0, 1]; randomness only ever comes from seeds passed in (noise fields are
drawn on the CPU so a record replays the same on any device).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a `(1, 3, H, W)` float tensor in [0, 1]."""
    if image.mode != "RGB":
        raise ValueError(f"Expected an RGB image, got mode {image.mode!r}; convert it first.")
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def to_image(tensor: torch.Tensor) -> Image.Image:
    """The first image of a `(B, 3, H, W)` tensor in [0, 1] as an 8-bit RGB PIL image (rounded, clamped)."""
    array = (tensor[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def noise_field(shape: tuple[int, ...], seed: int, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of `shape` drawn on the CPU from `seed`, moved to `like`'s device and dtype."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


def uniform_field(shape: tuple[int, ...], seed: int, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) noise of `shape` drawn on the CPU from `seed`, on `like`'s device and dtype."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand(shape, generator=generator, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


FFT_KERNEL_SIZE = (
    31  # from this size on, convolve by FFT (direct cost grows with the area; every earlier kernel was smaller)
)


def filter2d(image: torch.Tensor, kernel: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Convolve `(B, C, H, W)` with one `(k, k)` kernel per channel; reflect padding (replicate on tiny images)."""
    kernel = torch.as_tensor(kernel, dtype=image.dtype, device=image.device)
    k = kernel.shape[-1]
    channels = image.shape[1]
    pad = k // 2
    mode = "reflect" if pad < min(image.shape[-2:]) else "replicate"
    padded = F.pad(image, (pad, pad, pad, pad), mode=mode)
    if k >= FFT_KERNEL_SIZE:
        return _fft_correlate(padded, kernel)
    return F.conv2d(padded, kernel.expand(channels, 1, k, k), groups=channels)


def _fft_correlate(padded: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """`F.conv2d`'s valid cross-correlation of every channel with `kernel`, through the FFT: the circular
    convolution with the flipped kernel equals it wherever it does not wrap, which is the valid region."""
    height, width = padded.shape[-2:]
    k = kernel.shape[-1]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel.flip(-2, -1), s=(height, width))
    return torch.fft.irfft2(spectrum, s=(height, width))[..., k - 1 :, k - 1 :]


def _separable_gaussian(image: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """Separable Gaussian of `sigma` with `2 * radius + 1` taps, reflect padding (replicate on tiny images)."""
    axis = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    g = torch.exp(-(axis**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1)
    channels = image.shape[1]
    mode = "reflect" if radius < min(image.shape[-2:]) else "replicate"
    out = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode=mode), g.expand(channels, 1, 1, -1), groups=channels)
    g = g.view(1, 1, -1, 1)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode=mode), g.expand(channels, 1, -1, 1), groups=channels)


def gaussian_blur(image: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian blur with OpenCV's default sigma for an odd kernel `size` (reflect padding)."""
    return _separable_gaussian(image, 0.3 * ((size - 1) * 0.5 - 1) + 0.8, size // 2)


def usm_sharpen(
    image: torch.Tensor, weight: float = 0.5, threshold: float = 10, size: int = 51, per_channel_mask: bool = True
) -> torch.Tensor:
    """Unsharp masking as in BasicSR (51 px Gaussian): sharpen where the residual exceeds `threshold`/255, with the
    mask computed per channel as BasicSR does (`per_channel_mask=False`: one mask from the largest channel, as
    version-1 records were made)."""
    residual = image - gaussian_blur(image, size)
    magnitude = residual.abs() if per_channel_mask else residual.abs().amax(dim=1, keepdim=True)
    mask = (magnitude * 255 > threshold).to(image.dtype)
    soft_mask = gaussian_blur(mask, size)
    sharp = (image + weight * residual).clamp(0, 1)
    return soft_mask * sharp + (1 - soft_mask) * image


def add_noise(image: torch.Tensor, noise: dict[str, Any]) -> torch.Tensor:
    """Add the recorded Gaussian or Poisson noise and clamp to [0, 1].

    The noise is always drawn on the CPU from the recorded seed (CUDA's generator gives other numbers for the same
    seed), so a record made on a GPU replays with the same noise on a CPU."""
    generator = torch.Generator().manual_seed(noise["seed"])
    b, c, h, w = image.shape
    if noise["type"] == "gaussian":
        shape = (b, 1, h, w) if noise["gray"] else (b, c, h, w)
        field = torch.randn(shape, generator=generator, dtype=image.dtype).to(image.device) * noise["sigma"] / 255
    else:
        source = image.clamp(0, 1)
        if noise["gray"]:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
            source = (source * weights).sum(dim=1, keepdim=True)
        # distinct 8-bit values, rounded up to a power of two, set the photon count (as Real-ESRGAN)
        distinct = int((torch.bincount(torch.round(source * 255).long().flatten(), minlength=256) > 0).sum())
        levels = 2 ** math.ceil(math.log2(max(2, distinct)))
        photons = torch.poisson((source * levels).cpu(), generator=generator).to(image.device)
        field = (photons / levels - source) * noise["scale"]
    return (image + field).clamp(0, 1)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Real JPEG round trip through Pillow at `quality` (per image in the batch)."""
    out = []
    for single in image.clamp(0, 1):
        array = (single.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
        out.append(torch.from_numpy(decoded).permute(2, 0, 1))
    return torch.stack(out).to(device=image.device, dtype=image.dtype)


def resize(image: torch.Tensor, size: list[int], mode: str) -> torch.Tensor:
    """Resize `(B, C, H, W)` to `size = [H, W]` with F.interpolate's `area`, `bilinear` or `bicubic`."""
    if list(image.shape[-2:]) == list(size):
        return image
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(image, size=tuple(size), mode=mode, align_corners=align)


def blur_sigma(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of standard deviation `sigma` pixels (kernel of 2*ceil(3 sigma)+1 taps, reflect)."""
    if sigma <= 0:
        return image
    return _separable_gaussian(image, sigma, max(1, math.ceil(3 * sigma)))
