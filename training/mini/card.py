"""The mini model's card: how it was made, on what data, and what it measures on the held-out photos."""

from __future__ import annotations

from fluxir_hub.mini.config import MiniBuildConfig
from fluxir_hub.mini.photos import PHOTOS


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def render_model_card(config: MiniBuildConfig, report: dict) -> str:
    stages = report.get("stages", {})
    seconds = report.get("seconds", {})
    vae, fluxgen, evaluation = stages.get("vae", {}), stages.get("fluxgen", {}), stages.get("eval", {})
    photo_rows = "\n".join(f"| `{p.name}` | {p.split} | {p.credit} | {p.licence} |" for p in PHOTOS)
    metric_rows = "\n".join(
        f"| {metric} | {_fmt(evaluation.get('bicubic', {}).get(metric))} | "
        f"{_fmt(evaluation.get('mini-fluxir', {}).get(metric))} |"
        for metric in ("PSNR", "SSIM", "PIQE")
    )
    counts = fluxgen.get("counts", {})
    timing = ", ".join(f"{stage} {int(s)} s" for stage, s in seconds.items())
    return f"""---
license: apache-2.0
library_name: diffusers
pipeline_tag: image-to-image
tags:
- image-restoration
- super-resolution
- fluxir
- mini-model
---

# Mini FluxIR (trained offline on a CPU; not FLUX.1)

A small FLUX-shaped restoration model made by `fluxir-build-mini`: the whole "acquire then adapt" loop of paper 001
in miniature, so FluxIR Hub restores real photos out of the box where FLUX.1 cannot run (no GPU, no Hub access), and
so every algorithm in the project can be measured. It has the classes and layout of FLUX.1 (diffusers
`AutoencoderKL` with 16 latent channels and a scale/shift, `FluxTransformer2DModel` with double and single blocks and a
distilled-guidance input, CLIP and T5 text encoders) at a size that trains in under an hour on two CPU cores. The text
encoders are random and frozen: this is an empty-prompt model, and prompts do not steer it.

```python
from fluxir_hub.mini import load_mini_pipeline

pipe = load_mini_pipeline()
restored = pipe(low_quality_image, upscale=4, num_inference_steps=20).images[0]
```

## How it was made (seed {config.seed})

| stage | what | settings |
|---|---|---|
| vae | AutoencoderKL trained as an autoencoder (L1) on random {config.vae.patch_size} px patches of the training photos | channels {config.vae.block_out_channels}, {config.vae.steps} steps of batch {config.vae.batch_size}; shift {vae.get("shift_factor", 0):.4f}, scale {vae.get("scaling_factor", 0):.4f} measured on its latents |
| base | FluxTransformer2DModel trained as an empty-prompt flow-matching generator (paper 001 Eq. 7-8, FLUX's resolution shift) on those photos' latents | {config.base.num_layers} double + {config.base.num_single_layers} single blocks, {config.base.num_attention_heads} heads of {config.base.attention_head_dim}; {config.base.steps} steps of batch {config.base.batch_size} at {config.base.patch_sizes} px |
| fluxgen | `fluxgen run` on the base: {config.fluxgen.num_images} images at {config.fluxgen.width}x{config.fluxgen.height}, {config.fluxgen.num_inference_steps} steps, guidance {config.fluxgen.guidance_scale}; scored with {", ".join(config.fluxgen.metrics)}; top {100 - 100 * config.fluxgen.quantile:g} % kept; `{config.fluxgen.preset}` x{config.fluxgen.scale} | kept {counts.get("kept", "n/a")} of {counts.get("scored", "n/a")} |
| adapter | `fluxir-train` on those pairs: the FluxIR adapter, rank {config.adapter.rank}, pixel loss weight {config.adapter.pixel_loss_weight} | {config.adapter.steps} steps of batch {config.adapter.batch_size}, {config.adapter.crop_size} px crops, lr {config.adapter.learning_rate} |

Time per stage on the build machine: {timing or "n/a"}.

## Data

Only the colour photographs that ship with scikit-image. The held-out photos never enter any training stage (VAE,
base, FluxGen, adapter); they are only used to measure.

| photo | split | credit | licence |
|---|---|---|---|
{photo_rows}

## Measured

VAE reconstruction PSNR: {_fmt(vae.get("train_psnr"))} dB on the training photos, {_fmt(vae.get("heldout_psnr"))} dB on the
held-out photos (whole images).

Held-out benchmark: {config.eval.count} seeded {config.eval.crop} px crops of the held-out photos, degraded with
`{config.eval.preset}` x{config.eval.scale} (as FluxGen degrades), restored x{config.eval.scale} with
{config.eval.num_inference_steps} steps and the pipeline's defaults; `fluxir-eval` scores:

| metric | bicubic | mini FluxIR |
|---|---|---|
{metric_rows}

PSNR and SSIM: higher is better; PIQE: lower is better. `python benchmarks/mini_ablation.py` measures the adapter
against its ablations (zero adapter, no pixel loss, rank 8, no restoration sampling strategy, test-time scaling,
training on real patches instead of FluxGen data).

## Limits

A few million parameters trained for minutes on {len([p for p in PHOTOS if p.split == "train"])} photos: it restores
colour and structure and sharpens, but invents little detail, and it has never seen faces, text or most of the world.
Use a FLUX.1-based FluxIR adapter for real work.
"""
