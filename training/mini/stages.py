"""The two pretraining stages of the mini model: the VAE as an autoencoder, then the transformer as an empty-prompt
flow-matching generator in that VAE's latent space ("acquire"); FluxGen and adapter training ("adapt") follow in
`training.mini.build`."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from fluxir_hub.latents import image_ids, pack_latents, text_ids
from training.mini.config import BaseStage, VAEStage
from training.mini.models import build_transformer, build_vae, latent_statistics, text_components
from training.mini.photos import sample_patches

from .loop import CosineSchedule, PlateauSchedule, TrainResult, step_generator, train_steps


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


def fixed_crops(photos: list[torch.Tensor], per_photo: int, size: int, seed: int) -> torch.Tensor:
    """`per_photo` seeded `size`-pixel crops of each photo `(len(photos) * per_photo, 3, size, size)`: the fixed
    measuring set of a curve."""
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for photo in photos:
        for _ in range(per_photo):
            top = int(torch.randint(0, photo.shape[1] - size + 1, (1,), generator=generator))
            left = int(torch.randint(0, photo.shape[2] - size + 1, (1,), generator=generator))
            crops.append(photo[:, top : top + size, left : left + size])
    return torch.stack(crops)


@torch.no_grad()
def crops_psnr(vae, crops: torch.Tensor, batch_size: int = 4) -> float:
    """Mean round-trip PSNR (dB) of `crops` through encode -> decode, in float32."""
    values = []
    for i in range(0, len(crops), batch_size):
        x = crops[i : i + batch_size]
        out = vae.decode(vae.encode(x).latent_dist.mode()).sample
        mse = ((out.clamp(-1, 1) - x) / 2).pow(2).flatten(1).mean(1)
        values += (10 * torch.log10(1 / mse.clamp_min(1e-12))).tolist()
    return sum(values) / len(values)


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(reconstruction, target)
    if kind == "l1":
        return F.l1_loss(reconstruction, target)
    raise ValueError(f"The VAE loss must be 'mse' or 'l1', got {kind!r}.")


def train_vae(
    stage: VAEStage,
    photos: list[torch.Tensor],
    validation: torch.Tensor,
    heldout: torch.Tensor,
    seed: int,
    work_dir: Path,
    device: str = "cpu",
) -> tuple[AutoencoderKL, TrainResult]:
    """
    Train the autoencoder on random patches of `photos` (`stage.loss` reconstruction, deterministic latents with a
    small penalty on their size) until its round-trip PSNR on the `validation` crops stops rising
    ([`PlateauSchedule`]); the `heldout` crops' PSNR is measured alongside for the curve and never decides anything.
    Then set FLUX-style `shift_factor`/`scaling_factor` measured on training patches.
    """
    vae = build_vae(stage, seed).to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=stage.learning_rate, weight_decay=0.0, betas=(0.9, 0.99))
    validation, heldout, kind = validation.to(device), heldout.to(device), torch.device(device).type

    def step(index: int, generator: torch.Generator) -> torch.Tensor:
        x = sample_patches(photos, stage.batch_size, stage.patch_size, generator, channel_shuffle=False).to(device)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=stage.bf16_autocast):
            latents = vae.encode(x).latent_dist.mode()
            reconstruction = vae.decode(latents).sample
        loss = reconstruction_loss(reconstruction.float(), x, stage.loss)
        return loss + stage.latent_penalty * latents.float().pow(2).mean()

    def evaluate() -> dict[str, float]:
        return {"val_psnr": round(crops_psnr(vae, validation), 3), "heldout_psnr": round(crops_psnr(vae, heldout), 3)}

    schedule = PlateauSchedule(
        peak=stage.learning_rate,
        monitor="val_psnr",
        max_steps=stage.max_steps,
        warmup=stage.warmup_steps,
        window=stage.plateau_window,
        min_gain=stage.plateau_gain,
        decays=stage.plateau_decays,
    )
    result = train_steps(
        "vae",
        vae,
        optimizer,
        step,
        schedule,
        seed,
        work_dir / "vae-ckpt",
        evaluate=evaluate,
        eval_every=stage.eval_every,
    )
    sample = sample_patches(photos, 256, stage.patch_size, step_generator(seed, "vae-stats", 0), channel_shuffle=False)
    shift, scale = latent_statistics(vae, sample.to(device))
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return vae, result


@torch.no_grad()
def latent_bank(vae, photos: list[torch.Tensor], size: int, count: int, seed: int) -> torch.Tensor:
    """`count` random augmented `size`-pixel crops of `photos`, encoded and normalised like FLUX latents."""
    generator = step_generator(seed, f"bank-{size}", 0)
    chunks = []
    for start in range(0, count, 32):
        x = sample_patches(photos, min(32, count - start), size, generator, channel_shuffle=False)
        latents = vae.encode(x.to(vae.device)).latent_dist.mode()
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


def train_base(
    stage: BaseStage,
    vae,
    photos: list[torch.Tensor],
    seed: int,
    work_dir: Path,
    scheduler_config: dict,
    device: str = "cpu",
):
    """
    Train the transformer as an empty-prompt image generator: flow matching on the VAE latents of photo patches,
    `z_t = (1 - t) z0 + t z1`, target `v = z1 - z0`, MSE (paper 001 Eq. 7-8), `t` uniform then shifted for the patch's
    token count as FLUX samples; the distilled-guidance input sees random scales in [1, 5] so any scale works.
    """
    transformer = build_transformer(stage, seed).to(device)
    vae = vae.to(device)
    banks = {size: latent_bank(vae, photos, size, stage.latent_bank_size, seed) for size in stage.patch_sizes}
    prompt_embeds, pooled = (t.to(device) for t in empty_prompt_embeddings(seed))
    txt_ids, kind = text_ids(prompt_embeds.shape[1], device=device), torch.device(device).type
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=stage.learning_rate, weight_decay=0.0)

    def step(index: int, generator: torch.Generator) -> torch.Tensor:
        size = stage.patch_sizes[int(torch.randint(len(stage.patch_sizes), (1,), generator=generator))]
        bank = banks[size]
        z0 = bank[torch.randint(len(bank), (stage.batch_size,), generator=generator)]
        b, _, h, w = z0.shape
        z1 = torch.randn(z0.shape, generator=generator).to(device)
        t = flow_time(torch.rand(b, generator=generator), (h // 2) * (w // 2), scheduler_config).to(device)
        z_t = (1 - t.view(b, 1, 1, 1)) * z0 + t.view(b, 1, 1, 1) * z1
        guidance = 1 + 4 * torch.rand(b, generator=generator).to(device)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=stage.bf16_autocast):
            v_pred = transformer(
                hidden_states=pack_latents(z_t),
                encoder_hidden_states=prompt_embeds.expand(b, -1, -1),
                pooled_projections=pooled.expand(b, -1),
                timestep=t,
                img_ids=image_ids(h // 2, w // 2, device=device),
                txt_ids=txt_ids,
                guidance=guidance,
                return_dict=False,
            )[0]
        return F.mse_loss(v_pred.float(), pack_latents(z1 - z0))

    schedule = CosineSchedule(total=stage.steps, peak=stage.learning_rate)
    result = train_steps("base", transformer, optimizer, step, schedule, seed, work_dir / "base-ckpt")
    return transformer, result
