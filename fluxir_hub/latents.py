"""Packing of FLUX latents into 2x2 patch tokens, and their RoPE position ids."""

from __future__ import annotations

import torch


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` VAE latents -> `(B, H/2 * W/2, 4C)` tokens, 2x2 patches in row-major order (FLUX's layout)."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ValueError(f"Latent height and width must be even to pack 2x2 patches, got {h}x{w}.")
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return latents.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, latent_height: int, latent_width: int) -> torch.Tensor:
    """Inverse of [`pack_latents`]: `(B, N, 4C)` -> `(B, C, latent_height, latent_width)`."""
    b, n, d = tokens.shape
    h, w = latent_height // 2, latent_width // 2
    if n != h * w:
        raise ValueError(f"{n} tokens do not tile a {latent_height}x{latent_width} latent.")
    tokens = tokens.view(b, h, w, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return tokens.reshape(b, d // 4, latent_height, latent_width)


def image_ids(token_height: int, token_width: int, device=None, dtype=None) -> torch.Tensor:
    """RoPE ids `(token_height * token_width, 3)` of a packed image: `(0, row, column)` per token."""
    ids = torch.zeros(token_height, token_width, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(token_height, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(token_width, device=device, dtype=dtype)[None, :]
    return ids.reshape(token_height * token_width, 3)


def text_ids(length: int, device=None, dtype=None) -> torch.Tensor:
    """RoPE ids `(length, 3)` of the text tokens: all zeros, as in FLUX."""
    return torch.zeros(length, 3, device=device, dtype=dtype)
