"""Periodic validation: restore a few held-out LQ images with the current adapter and score them with NR-IQA."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image


def validation_inputs(trainer, count: int) -> list[tuple[Image.Image, str | None]]:
    """`(lq, task)`: LQ images at their native resolution (centre crops of the first pairs of the source) and the
    task each was made for, when the adapter is told tasks (else None)."""
    from fluxir_hub.degradations import degrade

    config, source = trainer.config, trainer.source
    width, height = min(config.data.crop_pairs, key=lambda s: s[0] * s[1])
    images = []
    pairs = (
        source.stream(config.optim.seed, 0, 0, 1) if source.streaming else (source.get(i) for i in range(len(source)))
    )
    for pair in pairs:
        if len(images) == count:
            break
        left, top = (
            (pair.hq.width - width) // 2 // config.data.scale * config.data.scale,
            (pair.hq.height - height) // 2 // config.data.scale * config.data.scale,
        )
        if left < 0 or top < 0:
            continue
        if pair.lq is None:
            hq = pair.hq.crop((left, top, left + width, top + height))
            result = degrade(hq, preset=config.data.degradation_config, scale=config.data.scale, seed=len(images))
            lq, task = result.lq, result.task
        else:
            s = 1 if pair.lq.size == pair.hq.size else config.data.scale  # same-size tasks keep the HQ's size
            lq, task = pair.lq.crop((left // s, top // s, (left + width) // s, (top + height) // s)), pair.task
        images.append((lq, task if source.use_task_prompts else None))
    return images


def run_validation(trainer, folder: Path) -> dict[str, float]:
    from fluxir_hub.evaluation.metrics import create_pyiqa_metric

    config = trainer.config
    pipe = trainer.pipe
    if trainer.validation_inputs is None:  # the same LQ images at every validation, read once
        trainer.validation_inputs = validation_inputs(trainer, config.validation.num_validation_images)
    inputs = trainer.validation_inputs
    if not inputs:
        return {}
    writes = trainer.accelerator.is_main_process  # with a sharded base every process restores, one writes
    if writes:
        folder.mkdir(parents=True, exist_ok=True)
    if trainer.validation_metrics is None:  # built on first use, then reused
        pretrained = not config.model.pretrained_model.startswith("tiny")  # the tiny model's runs stay offline
        trainer.validation_metrics = {
            name: create_pyiqa_metric(name, trainer.accelerator.device, pretrained=pretrained)
            for name in config.validation.validation_metrics
        }
    totals = {name: 0.0 for name in trainer.validation_metrics}
    width, _ = min(config.data.crop_pairs, key=lambda s: s[0] * s[1])
    for index, (lq, task) in enumerate(inputs):
        restored = pipe(
            lq,
            task=task,
            upscale=width / lq.width,
            num_inference_steps=config.validation.validation_inference_steps,
            generator=torch.Generator().manual_seed(index),
            output_type="pt",
        ).images
        if writes:
            image = Image.fromarray((restored[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8"))
            image.save(folder / f"{index:02d}.png")
            lq.save(folder / f"{index:02d}_lq.png")
        for name, metric in trainer.validation_metrics.items():
            totals[name] += float(metric(restored.to(trainer.accelerator.device)).mean()) / len(inputs)
    for tracker in trainer.accelerator.trackers if writes else ():
        if tracker.name == "tensorboard":
            import numpy as np

            stack = np.stack([np.asarray(Image.open(folder / f"{i:02d}.png")) for i in range(len(inputs))])
            tracker.writer.add_images("validation", stack, trainer.global_step, dataformats="NHWC")
    return totals
