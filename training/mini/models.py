"""The mini model's components: the classes of FLUX.1 (diffusers `AutoencoderKL`, `FluxTransformer2DModel`, CLIP and
T5 text encoders) at a size that trains on two CPU cores."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

from fluxir_hub.flux_configs import FLUX_SCHEDULER_CONFIG
from fluxir_hub.tiny import TEXT_WIDTH, tiny_text_components

from .config import BaseStage, VAEStage


def build_vae(stage: VAEStage, seed: int) -> AutoencoderKL:
    """A fresh AutoencoderKL with FLUX's latent layout (16 channels, one 2x downsampling per block after the first).

    No attention in the mid block: at 1024x1024 it would attend over 16,384 positions for no gain at this size.
    `scaling_factor`/`shift_factor` are placeholders until [`latent_statistics`] measures them.
    """
    torch.manual_seed(seed)
    levels = len(stage.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(stage.block_out_channels),
        layers_per_block=stage.layers_per_block,
        latent_channels=16,
        norm_num_groups=16,
        mid_block_add_attention=False,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=1.0,
        shift_factor=0.0,
    )


def build_transformer(stage: BaseStage, seed: int) -> FluxTransformer2DModel:
    """A fresh FLUX transformer: 64-channel packed latents, guidance embedding, double then single blocks."""
    head = stage.attention_head_dim
    if head % 8:
        raise ValueError(f"attention_head_dim must be a multiple of 8 (RoPE axes), got {head}.")
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=stage.num_layers,
        num_single_layers=stage.num_single_layers,
        attention_head_dim=head,
        num_attention_heads=stage.num_attention_heads,
        joint_attention_dim=TEXT_WIDTH,
        pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=True,
        axes_dims_rope=[head // 4, 3 * head // 8, 3 * head // 8],  # FLUX's 16/56/56 split of 128, scaled
    )


def build_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG)


def text_components(seed: int) -> dict[str, Any]:
    """The tiny text encoders (random, frozen): the mini model is an empty-prompt model, as FluxGen uses FLUX."""
    return tiny_text_components(seed)


@torch.no_grad()
def latent_statistics(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 16) -> tuple[float, float]:
    """`(shift_factor, scaling_factor)` that map the VAE's latents of `images` (`(N, 3, H, W)` in [-1, 1]) to zero mean
    and unit variance, as FLUX's VAE config does for FLUX latents."""
    latents = torch.cat(
        [vae.encode(images[i : i + batch_size]).latent_dist.mode() for i in range(0, len(images), batch_size)]
    )
    return float(latents.mean()), float(1.0 / latents.std())
