"""The two pretraining stages of the mini model: the VAE as an autoencoder, then the transformer as an empty-prompt
flow-matching generator in that VAE's latent space ("acquire"); FluxGen and adapter training ("adapt") follow in
`training.mini.build`."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from fluxir_hub.latents import image_ids, pack_latents, text_ids
from fluxir_hub.mini.config import BaseStage, VAEStage
from fluxir_hub.mini.models import build_transformer, build_vae, latent_statistics, text_components
from fluxir_hub.mini.photos import sample_patches

from .loop import step_generator, train_steps


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    mse = F.mse_loss((a.clamp(-1, 1) + 1) / 2, (b.clamp(-1, 1) + 1) / 2).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


@torch.no_grad()
def reconstruction_psnr(vae, photos: list[torch.Tensor]) -> float:
    """Mean PSNR of whole photos (cropped to multiples of 16) through encode -> decode."""
    values = []
    for photo in photos:
        h, w = photo.shape[1] // 16 * 16, photo.shape[2] // 16 * 16
        x = photo[None, :, :h, :w]
        values.append(psnr(vae.decode(vae.encode(x).latent_dist.mode()).sample, x))
    return sum(values) / len(values)


def train_vae(stage: VAEStage, photos: list[torch.Tensor], seed: int, work_dir: Path):
    """
    Train the autoencoder on random patches of `photos` (L1 reconstruction, deterministic latents with a small
    penalty on their size), then set FLUX-style `shift_factor`/`scaling_factor` measured on the training patches.
    """
    vae = build_vae(stage, seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=stage.learning_rate, weight_decay=0.0)

    def step(index: int, generator: torch.Generator) -> torch.Tensor:
        x = sample_patches(photos, stage.batch_size, stage.patch_size, generator)
        latents = vae.encode(x).latent_dist.mode()
        reconstruction = vae.decode(latents).sample
        return F.l1_loss(reconstruction, x) + stage.latent_penalty * latents.pow(2).mean()

    losses = train_steps("vae", vae, optimizer, step, stage.steps, stage.learning_rate, seed, work_dir / "vae-ckpt")
    sample = sample_patches(photos, 256, stage.patch_size, step_generator(seed, "vae-stats", 0))
    shift, scale = latent_statistics(vae, sample)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return vae, losses


@torch.no_grad()
def latent_bank(vae, photos: list[torch.Tensor], size: int, count: int, seed: int) -> torch.Tensor:
    """`count` random augmented `size`-pixel crops of `photos`, encoded and normalised like FLUX latents."""
    generator = step_generator(seed, f"bank-{size}", 0)
    chunks = []
    for start in range(0, count, 32):
        x = sample_patches(photos, min(32, count - start), size, generator)
        latents = vae.encode(x).latent_dist.mode()
        chunks.append((latents - vae.config.shift_factor) * vae.config.scaling_factor)
    return torch.cat(chunks)


@torch.no_grad()
def empty_prompt_embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 `(1, L, 32)` and pooled CLIP `(1, 32)` embeddings of the empty prompt, tokenised as `FluxIRPipeline` does
    (padded to each tokenizer's full length)."""
    encoders = text_components(seed)
    clip, t5 = encoders["tokenizer"], encoders["tokenizer_2"]
    clip_ids = clip([""], padding="max_length", max_length=clip.model_max_length, truncation=True, return_tensors="pt")
    t5_ids = t5([""], padding="max_length", max_length=t5.model_max_length, truncation=True, return_tensors="pt")
    pooled = encoders["text_encoder"](clip_ids.input_ids).pooler_output
    embeds = encoders["text_encoder_2"](t5_ids.input_ids)[0]
    return embeds, pooled


def flow_time(u: torch.Tensor, seq_len: int, scheduler_config: dict) -> torch.Tensor:
    """FLUX's resolution-dependent time shift of uniform `u`: more noise for longer token sequences."""
    mu = calculate_shift(
        seq_len,
        scheduler_config["base_image_seq_len"],
        scheduler_config["max_image_seq_len"],
        scheduler_config["base_shift"],
        scheduler_config["max_shift"],
    )
    return math.exp(mu) / (math.exp(mu) + (1 / u.clamp(1e-4, 1.0) - 1))


def train_base(stage: BaseStage, vae, photos: list[torch.Tensor], seed: int, work_dir: Path, scheduler_config: dict):
    """
    Train the transformer as an empty-prompt image generator: flow matching on the VAE latents of photo patches,
    `z_t = (1 - t) z0 + t z1`, target `v = z1 - z0`, MSE (paper 001 Eq. 7-8), `t` uniform then shifted for the patch's
    token count as FLUX samples; the distilled-guidance input sees random scales in [1, 5] so any scale works.
    """
    transformer = build_transformer(stage, seed)
    banks = {size: latent_bank(vae, photos, size, stage.latent_bank_size, seed) for size in stage.patch_sizes}
    prompt_embeds, pooled = empty_prompt_embeddings(seed)
    txt_ids = text_ids(prompt_embeds.shape[1])
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=stage.learning_rate, weight_decay=0.0)

    def step(index: int, generator: torch.Generator) -> torch.Tensor:
        size = stage.patch_sizes[int(torch.randint(len(stage.patch_sizes), (1,), generator=generator))]
        bank = banks[size]
        z0 = bank[torch.randint(len(bank), (stage.batch_size,), generator=generator)]
        b, _, h, w = z0.shape
        z1 = torch.randn(z0.shape, generator=generator)
        t = flow_time(torch.rand(b, generator=generator), (h // 2) * (w // 2), scheduler_config)
        z_t = (1 - t.view(b, 1, 1, 1)) * z0 + t.view(b, 1, 1, 1) * z1
        guidance = 1 + 4 * torch.rand(b, generator=generator)
        v_pred = transformer(
            hidden_states=pack_latents(z_t),
            encoder_hidden_states=prompt_embeds.expand(b, -1, -1),
            pooled_projections=pooled.expand(b, -1),
            timestep=t,
            img_ids=image_ids(h // 2, w // 2),
            txt_ids=txt_ids,
            guidance=guidance,
            return_dict=False,
        )[0]
        return F.mse_loss(v_pred, pack_latents(z1 - z0))

    losses = train_steps(
        "base", transformer, optimizer, step, stage.steps, stage.learning_rate, seed, work_dir / "base-ckpt"
    )
    return transformer, losses
