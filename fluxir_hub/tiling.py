"""Tiled evaluation on packed latent token grids, with linear overlap blending.

Large outputs are restored tile by tile in latent space: at every step the velocity is predicted for each
overlapping tile and the tiles are averaged with weights that ramp down across the overlap, so neighbouring tiles
fade into each other instead of meeting at a seam. The scheduler step then runs once on the whole latent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of size `tile` covering `[0, length)` with at least `overlap` shared cells."""
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"Tile overlap must be in [0, tile), got overlap={overlap} for tile={tile}.")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # the last window ends flush with the edge
    return starts


def blend_ramp(size: int, overlap: int, device=None, dtype=None) -> torch.Tensor:
    """1-D weights: rising over the first `overlap` cells, falling over the last, 1 in between; never zero."""
    position = torch.arange(size, device=device, dtype=dtype)
    distance = torch.minimum(position + 1, size - position)
    return (distance.clamp(max=overlap + 1) / (overlap + 1)).to(dtype)


def tiled_map(
    fn: Callable[[torch.Tensor, int, int], torch.Tensor],
    grid: torch.Tensor,
    tile: int,
    overlap: int,
) -> torch.Tensor:
    """
    Apply `fn` to overlapping tiles of `grid` and blend the results.

    Args:
        fn: Takes a tile `(B, th, tw, D_in)` and its height and width, returns `(B, th, tw, D_out)`.
        grid (`torch.Tensor` of shape `(B, H, W, D_in)`): Token grid (packed latents viewed as an image).
        tile (`int`): Tile side in tokens.
        overlap (`int`): Overlap between neighbouring tiles in tokens.

    Returns:
        `torch.Tensor` of shape `(B, H, W, D_out)`; equal to `fn(grid)` wherever `fn` acts token by token.
    """
    _, height, width, _ = grid.shape
    output = None
    weight_sum = torch.zeros(height, width, 1, device=grid.device, dtype=torch.float32)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            th, tw = min(tile, height), min(tile, width)
            result = fn(grid[:, top : top + th, left : left + tw], th, tw)
            weight = (
                blend_ramp(th, overlap, grid.device, torch.float32)[:, None]
                * blend_ramp(tw, overlap, grid.device, torch.float32)[None, :]
            )
            weight = weight[..., None]
            if output is None:
                output = torch.zeros(*grid.shape[:3], result.shape[-1], device=grid.device, dtype=torch.float32)
            output[:, top : top + th, left : left + tw] += result.float() * weight
            weight_sum[top : top + th, left : left + tw] += weight
    return (output / weight_sum).to(grid.dtype)
