"""What the mini model does, shown and bounded: a gallery of held-out crops of every task, and the VAE's round trip.

The gallery has one row per task (paper 002's seven): the degraded input, its bicubic upscale (super-resolution; the
input itself for the same-size tasks), Real-ESRGAN x4plus's restoration when the `[baselines]` extra is installed (what
users run instead; for the same-size tasks its x4 output resized back, as its `--outscale 1`), the mini model's
restoration (the SR adapter at its defaults for `sr`, the all-in-one adapter for the others, told the task) and the
ground truth, all crops of held-out photos that no stage trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

COLUMNS = ("input", "bicubic", "Real-ESRGAN", "mini FluxIR", "ground truth")
LABEL_HEIGHT = 18


@torch.no_grad()
def vae_round_trip(vae, bench: Path, folder: Path) -> None:
    """Each HQ of `bench` through `vae` and back, saved under `folder`: the ceiling of any restoration in its latent
    space (no method decoding through this VAE can beat it on PSNR, except by chance)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((bench / "hq").glob("*.png")):
        if (folder / path.name).exists():
            continue
        hq = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1)
        x = hq.permute(2, 0, 1)[None].to(vae.device, vae.dtype)
        image = vae.decode(vae.encode(x).latent_dist.mode(), return_dict=False)[0]
        array = ((image[0].float().permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
        Image.fromarray(array).save(folder / path.name)


def _labelled(image: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    out.paste(image, (0, LABEL_HEIGHT))
    ImageDraw.Draw(out).text((4, 3), text, fill="black")
    return out


def gallery_rows(
    bench: Path, seed: int, steps: int | None, load_pipeline, baseline=None
) -> list[tuple[str, list[Image.Image | None]]]:
    """`(task, [input, bicubic, baseline, restored, ground truth])` for the first crop of each task in a `tasks`
    benchmark; `load_pipeline(task)` gives the pipeline that restores it, `steps=None` its default; `baseline` (an
    `image, outscale -> image` restorer) fills the Real-ESRGAN column (`None` there without one)."""
    from fluxir_hub.evaluation.benchmarks import benchmark_tasks
    from fluxir_hub.tasks import get_task

    rows, pipes = [], {}
    for name, task in sorted(benchmark_tasks(bench).items(), key=lambda item: item[0]):
        if any(row[0] == task for row in rows):
            continue
        lq = Image.open(bench / "lq" / f"{name}.png").convert("RGB")
        hq = Image.open(bench / "hq" / f"{name}.png").convert("RGB")
        kind = "sr" if task == "sr" else "all-in-one"
        if kind not in pipes:
            pipes[kind] = load_pipeline(task)
        upscale = hq.width / lq.width if get_task(task).resizes else 1
        restored = pipes[kind](
            lq, task=task, upscale=upscale, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed)
        ).images[0]
        other = None
        if baseline is not None:  # Real-ESRGAN upscales x4; the same-size tasks get its output resized back
            other = baseline(lq, outscale=upscale).resize(hq.size, Image.LANCZOS)
        bicubic = lq.resize(hq.size, Image.BICUBIC)
        rows.append((task, [lq.resize(hq.size, Image.NEAREST), bicubic, other, restored, hq]))
    return rows


def compose(rows: list[tuple[str, list[Image.Image]]], tile: int = 176) -> Image.Image:
    """One image: a labelled column per kind, a labelled row per task."""
    label_width = 90
    shown = [i for i, _ in enumerate(COLUMNS) if any(images[i] is not None for _, images in rows)]
    sheet = Image.new("RGB", (label_width + tile * len(shown), (tile + LABEL_HEIGHT) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (task, images) in enumerate(rows):
        y = r * (tile + LABEL_HEIGHT)
        draw.text((4, y + LABEL_HEIGHT + tile // 2), task, fill="black")
        for c, index in enumerate(shown):
            image = images[index].resize((tile, tile), Image.LANCZOS)
            sheet.paste(_labelled(image, COLUMNS[index]), (label_width + c * tile, y))
    return sheet


def render_gallery(build, path: Path) -> dict:
    """Restore one held-out crop of every task with the shipped mini model and save the gallery PNG at `path`."""
    from fluxir_hub.mini import load_mini_pipeline

    bench = build.build_bench("tasks", count=1)

    def load(task: str):
        return load_mini_pipeline(build.output_dir, device="cpu", task=task)

    from fluxir_hub.evaluation.baselines import BaselineUnavailableError, RealESRGANNcnn

    try:
        baseline = RealESRGANNcnn()
    except BaselineUnavailableError:  # the optional extra: the gallery goes without that column
        baseline = None
    rows = gallery_rows(bench, build.config.seed, None, load, baseline)  # each pipeline at its own defaults
    compose(rows).save(path, quality=90, optimize=True)  # a JPEG: small enough to ship beside the weights
    return {"file": path.name, "tasks": [task for task, _ in rows], "real_esrgan": baseline is not None}
