"""Stage 1: generate images with a FLUX text-to-image model, one seed per image (paper 001 §3.1).

Seeds are split across processes (`accelerate launch`, one per GPU, any number of machines) in fixed blocks of
`batch_size` seeds: process `i` of `n` takes blocks `i, i+n, ...`, so shards are disjoint and each image is made in
the same batch for any number of processes. Every image is written atomically; a rerun skips
seeds already on disk, so a killed run loses only the batch in flight.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fluxir_hub.distributed import blocks, process_state, shard

from .config import GenerateConfig
from .io_utils import BuildLayout, atomic_save_png, remove_stale_temp_files

TINY_MAX_SEQUENCE_LENGTH = 32


def load_prompts(config: GenerateConfig) -> list[str]:
    if config.prompts_file is None:
        return [""]
    prompts = [line.strip() for line in Path(config.prompts_file).read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"Prompts file {config.prompts_file} has no prompts.")
    return prompts


def load_text_to_image(config: GenerateConfig, device: torch.device):
    """Return `(FluxPipeline, resolved revision, max_sequence_length)` for `config.model`."""
    from diffusers import FluxPipeline

    if config.model == "tiny":
        from fluxir_hub.tiny import tiny_components

        pipe = FluxPipeline(**tiny_components())
        return pipe.to(device), "tiny", TINY_MAX_SEQUENCE_LENGTH
    folder = Path(config.model)
    if not folder.is_dir():
        folder = Path(FluxPipeline.download(config.model, revision=config.revision))
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(folder))
    revision = match.group(1) if match else (config.revision or "local")
    pipe = FluxPipeline.from_pretrained(folder, dtype=getattr(torch, config.dtype))
    # FLUX.1's T5 takes 512 tokens; a smaller model's tokenizer says how many it takes.
    return pipe.to(device), revision, min(512, pipe.tokenizer_2.model_max_length)


def generate_images(root: Path, config: GenerateConfig, show_progress: bool = True) -> int:
    """Generate every missing image of this process's seed shard into `root`; returns how many were written."""
    state = process_state()
    layout = BuildLayout(root)
    if state.is_main_process:
        remove_stale_temp_files(layout.root / "images")
    state.wait_for_everyone()

    # Batches are fixed blocks of seeds, dealt to the processes in turn: an image is computed in the same batch
    # (so with the same numbers) whatever the number of processes.
    seeds = range(config.seed_start, config.seed_end)
    batches = [
        pending
        for block in shard(blocks(list(seeds), config.batch_size), state)
        if (pending := [seed for seed in block if not layout.image_path(seed).exists()])
    ]
    if not batches:
        return 0
    prompts = load_prompts(config)
    pipe, revision, max_sequence_length = load_text_to_image(config, state.device)
    pipe.set_progress_bar_config(disable=True)

    written = 0
    total = sum(len(batch) for batch in batches)
    bar = tqdm(total=total, desc=f"Generating [{state.process_index}]", disable=not show_progress)
    for batch in batches:
        batch_prompts = [prompts[seed % len(prompts)] for seed in batch]
        images = pipe(
            prompt=batch_prompts,
            height=config.height,
            width=config.width,
            guidance_scale=config.guidance_scale,
            num_inference_steps=config.num_inference_steps,
            generator=[torch.Generator(device=state.device).manual_seed(seed) for seed in batch],
            max_sequence_length=max_sequence_length,
        ).images
        for seed, prompt, image in zip(batch, batch_prompts, images, strict=True):
            meta = {
                "seed": seed,
                "prompt": prompt,
                "model": config.model,
                "revision": revision,
                "guidance_scale": config.guidance_scale,
                "num_inference_steps": config.num_inference_steps,
            }  # no rank here: an image's bytes are the same whatever the number of processes
            atomic_save_png(layout.image_path(seed), image, {"fluxgen": json.dumps(meta)})
            written += 1
        bar.update(len(batch))
    bar.close()
    return written


def read_image_metadata(path: Path) -> dict:
    """The generation record stored in a generated PNG."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text["fluxgen"])
