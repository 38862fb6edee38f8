"""The mini model's card: how it was made, on what data (with each photo's source and licence), and what it
measures on the held-out photos, beside the VAE's own round trip."""

from __future__ import annotations

from fluxir_hub.tasks import TASKS
from training.mini.config import MiniBuildConfig
from training.mini.photos import PHOTOS, Photo


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def _source(photo: Photo) -> str:
    if photo.source == "debian":
        return f"Debian `{photo.package}` {photo.version}, `{photo.path}`"
    if photo.source == "matplotlib":
        return f"matplotlib sample data, `{photo.path}`"
    return f"scikit-image, `skimage.data.{photo.path}()`"


def render_model_card(config: MiniBuildConfig, report: dict) -> str:
    stages = report.get("stages", {})
    seconds = report.get("seconds", {})
    vae, fluxgen, evaluation = stages.get("vae", {}), stages.get("fluxgen", {}), stages.get("eval", {})
    photos = [p for p in PHOTOS if p.split != "train" or p.photo_set <= config.photo_set]  # this build's photo set
    photo_rows = "\n".join(f"| `{p.name}` | {p.split} | {_source(p)} | {p.credit} | {p.licence} |" for p in photos)
    methods = [("vae-round-trip", "VAE round trip (ceiling)"), ("bicubic", "bicubic"),
               ("realesrgan", "Real-ESRGAN x4plus"), ("mini-fluxir", "mini FluxIR")]  # fmt: skip
    metric_rows, texture_rows = (
        "\n".join(
            f"| {metric} | " + " | ".join(_fmt(means.get(key, {}).get(metric)) for key, _ in methods) + " |"
            for metric in ("PSNR", "SSIM", "PIQE")
        )
        for means in (evaluation, evaluation.get("texture", {}))
    )
    curve = vae.get("curve") or []
    curve_rows = "\n".join(
        f"| {point['step']} | {point['minutes']:.1f} | {point['val_psnr']:.2f} | {point['heldout_psnr']:.2f} |"
        for point in curve[:: max(1, len(curve) // 12)] + curve[-1:]
    )
    counts = fluxgen.get("counts", {})
    timing = ", ".join(f"{stage} {int(s)} s" for stage, s in seconds.items())
    v, b, a, t = config.vae, config.base, config.adapter, config.tasks
    vae_stop = (
        f"stopped at step {vae['stopped_at']}, flat at the lowest rate"
        if vae.get("stopped_at")
        else f"stopped at the {v.max_steps}-step cap"
    )
    gallery = evaluation.get("gallery")
    gallery_section = (
        f"\n## Gallery\n\nHeld-out crops (never trained on), one per task: the input, its bicubic upscale (for "
        f"super-resolution; the same-size tasks show the input), the mini model's restoration and the ground truth.\n\n"
        f"![gallery]({gallery['file']})\n"
        if gallery
        else ""
    )
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
distilled-guidance input, CLIP and T5 text encoders) at a size that trains in about an hour and a half on two CPU
cores. The text encoders are random and frozen: prompts do not steer it, but the all-in-one adapter's task prompts
(cached in it) tell it the task.

```python
from fluxir_hub.mini import load_mini_pipeline

pipe = load_mini_pipeline()
restored = pipe(low_quality_image, upscale=4).images[0]  # its defaults: {config.eval.sampling_defaults}
pipe = load_mini_pipeline(task="denoise")  # the all-in-one adapter in all_in_one/: seven tasks
restored = pipe(noisy_image, task="denoise").images[0]
```
{gallery_section}
## How it was made (seed {config.seed})

| stage | what | settings |
|---|---|---|
| vae | AutoencoderKL trained as an autoencoder ({v.loss.upper()}) on random {v.patch_size} px patches of the training photos, its schedule driven by the round-trip PSNR on {len(v.validation_photos) * v.validation_crops} validation crops of training photos ({", ".join(v.validation_photos)}, held out of this stage only) | channels {v.block_out_channels}, {v.layers_per_block} layer(s) per block; {vae.get("steps", "n/a")} steps of batch {v.batch_size}, lr {v.learning_rate} halved where the curve flattened (steps {vae.get("rate_halved_at", "n/a")}), {vae_stop}; shift {vae.get("shift_factor", 0):.4f}, scale {vae.get("scaling_factor", 0):.4f} measured on its latents; stored as {v.storage_dtype} |
| base | FluxTransformer2DModel trained as an empty-prompt flow-matching generator (paper 001 Eq. 7-8, FLUX's resolution shift) on all training photos' latents | {b.num_layers} double + {b.num_single_layers} single blocks, {b.num_attention_heads} heads of {b.attention_head_dim}; {b.steps} steps of batch {b.batch_size} at {b.patch_sizes} px |
| fluxgen | `fluxgen run` on the base: {config.fluxgen.num_images} images at {config.fluxgen.width}x{config.fluxgen.height}, {config.fluxgen.num_inference_steps} steps, guidance {config.fluxgen.guidance_scale}; scored with {", ".join(config.fluxgen.metrics)}; top {100 - 100 * config.fluxgen.quantile:g} % kept; `{config.fluxgen.preset}` x{config.fluxgen.scale} | kept {counts.get("kept", "n/a")} of {counts.get("scored", "n/a")} |
| adapter | `fluxir-train` on those pairs: the FluxIR adapter, rank {a.rank}, pixel loss weight {a.pixel_loss_weight} | {a.steps} steps of batch {a.batch_size}, {a.crop_size} px crops, lr {a.learning_rate} |
| tasks | the all-in-one adapter (`all_in_one/`): the SR adapter fine-tuned on the FluxGen images degraded with `mixed` (paper 002's seven tasks: {", ".join(TASKS)}), with each task's prompt, cached in it | {t.steps} steps of batch {t.batch_size}, {t.crop_size} px crops, lr {t.learning_rate}; restores in {t.sampling_defaults.get("num_inference_steps", 20)} steps unless told otherwise (`sampling_defaults`, chosen per task on validation crops of training photos) |

Time per stage on the build machine: {timing or "n/a"}.

## Data

Real photographs only: scikit-image's colour photos, matplotlib's sample photo, the photographs in Debian's
wallpaper packages and, as a second held-out set (`texture`), animal and monument photos of Debian's
`gcompris-qt-data` (fetched by the build's `photos` stage, each checked against its sha256). The held-out photos of
either set never enter any training stage (VAE, base, FluxGen, adapters) and choose no setting; they are only used to
measure.

| photo | split | source | credit | licence |
|---|---|---|---|---|
{photo_rows}

## Measured

The VAE's round trip while it trained (256 px crops; the held-out column is measured alongside and decides nothing):

| step | minutes | validation crops PSNR | held-out crops PSNR |
|---|---|---|---|
{curve_rows}

Whole held-out photos: {_fmt(vae.get("heldout_photo_psnr"))} dB.

Held-out benchmark: {config.eval.count} seeded {config.eval.crop} px crops of the held-out photos, degraded with
`{config.eval.preset}` x{config.eval.scale} (as FluxGen degrades), restored x{config.eval.scale} at the adapter's
defaults ({config.eval.sampling_defaults}, chosen on validation crops of training photos); Real-ESRGAN x4plus (official
weights, when the `[baselines]` extra is installed) is what users run instead; `fluxir-eval` scores (the VAE round trip
encodes and decodes the ground truth: no method decoding through this VAE can beat it):

| metric | VAE round trip (ceiling) | bicubic | Real-ESRGAN x4plus | mini FluxIR |
|---|---|---|---|---|
{metric_rows}

The same on the texture-rich held-out set (fur, feathers, leaves, carved stone, which the training photos lack):

| metric | VAE round trip (ceiling) | bicubic | Real-ESRGAN x4plus | mini FluxIR |
|---|---|---|---|---|
{texture_rows}

PSNR and SSIM: higher is better; PIQE: lower is better. `python benchmarks/mini_ablation.py` measures the adapter
against its ablations and `python benchmarks/mini_tasks.py` the all-in-one adapter per task.

## Limits

A few million parameters trained on a CPU on {len([p for p in photos if p.split == "train"])} photos: it restores
colour and structure and sharpens, but invents little detail, and it has seen few faces, no text and little of the
world. Use a FLUX.1-based FluxIR adapter for real work.
"""
