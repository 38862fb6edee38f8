"""Flow-matching training objective of paper 001 §3.3: the timestep density (Eq. 5-6) and the losses (Eq. 7-10).

Conventions: `t` in [0, 1] is flow time with 1 = noise; `z_t = (1 - t) z0 + t z1` for data latent `z0` and noise
`z1`; the model predicts the velocity `v = z1 - z0`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def sample_timesteps(batch_size: int, eps: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """
    Paper 001 Eq. 5-6: `u ~ U(-eps, 1 + eps)`, `t = clamp(u, 0, 1)`.

    The clamp puts a point mass of `eps / (1 + 2 eps)` (0.04545 for eps = 0.05) on each end, so the pure-noise start
    of inference (t = 1) is trained explicitly, with a uniform density in between. (The paper's text gives the mass
    as 1 / (1 + 2 eps); that is a typo.)

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, float32, in [0, 1].
    """
    if eps < 0:
        raise ValueError(f"`eps` must be non-negative, got {eps}.")
    u = torch.rand(batch_size, generator=generator) * (1 + 2 * eps) - eps
    return u.clamp(0.0, 1.0)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """`z_t = (1 - t) z0 + t z1`, with `t` of shape `(B,)` broadcast over the other dimensions."""
    t = t.view(-1, *([1] * (z0.ndim - 1))).to(z0.dtype)
    return (1 - t) * z0 + t * z1


def velocity_loss(v_pred: torch.Tensor, v_target: torch.Tensor) -> torch.Tensor:
    """Paper 001 Eq. 7: `L_MSE = ||v_p - v||^2` (mean over elements)."""
    return F.mse_loss(v_pred.float(), v_target.float())


def random_latent_crop(
    tensors: list[torch.Tensor], size: int | None, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """The same random `size x size` window of each `(B, C, H, W)` latent; all of it when `size` is None or larger."""
    height, width = tensors[0].shape[-2:]
    if size is None or (size >= height and size >= width):
        return tensors
    ch, cw = min(size, height), min(size, width)
    top = int(torch.randint(0, height - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - cw + 1, (1,), generator=generator))
    return [x[..., top : top + ch, left : left + cw] for x in tensors]


def pixel_loss(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    z_t: torch.Tensor,
    v_pred: torch.Tensor,
    v_target: torch.Tensor,
    t: torch.Tensor,
    form: str = "printed",
) -> torch.Tensor:
    """
    Pixel-space L1 through the frozen VAE decoder `decode` (unpacked latents -> images).

    - `form="printed"`: paper 001 Eq. 9 as printed, `|| D(z0 + t v_p) - D(z0 + t v) ||_1`.
    - `form="x0"`: the clean-image form, `|| D(z_t - t v_p) - D(z0) ||_1`.

    All latents are `(B, C, H, W)`; `t` is `(B,)`. Gradients flow to `v_pred` only.
    """
    tb = t.view(-1, 1, 1, 1).to(v_pred.dtype)
    if form == "printed":
        prediction, target = z0 + tb * v_pred, z0 + tb * v_target
    elif form == "x0":
        prediction, target = z_t - tb * v_pred, z0
    else:
        raise ValueError(f"`pixel_loss_form` must be 'printed' or 'x0', got {form!r}.")
    with torch.no_grad():
        target_image = decode(target.detach())
    return F.l1_loss(decode(prediction).float(), target_image.float())
