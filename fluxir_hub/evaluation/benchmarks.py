"""Benchmark inputs from a user's local copy of each dataset (paper 001 §4.1).

A benchmark folder holds `lq/<name>.png`, `hq/<name>.png` when ground truth exists, and `benchmark.json` (how it was
made; for DIV2K-Val every crop box and degradation record). Builders are resumable and deterministic for a seed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..files import atomic_save_png, atomic_write_text
from ..image_io import IMAGE_EXTENSIONS, find_images, load_image

BENCHMARKS = ("div2k-val", "realsr", "drealsr", "reallq250", "tasks")
DISPLAY_NAMES = {
    "div2k-val": "DIV2K-Val",
    "realsr": "RealSR",
    "drealsr": "DRealSR",
    "reallq250": "RealLQ250",
    "tasks": "Tasks",
}


def _save(image: Image.Image, path: Path) -> None:
    atomic_save_png(path, image)


def _write_manifest(out_dir: Path, data: dict) -> None:
    atomic_write_text(out_dir / "benchmark.json", json.dumps(data, indent=1) + "\n")


def images_at_least(source: Path, crop: int, hint: str) -> list[Path]:
    """The images under `source` whose shorter side is at least `crop` pixels; none is an error ending in `hint`."""
    usable = []
    for path in find_images([source]).paths:
        with Image.open(path) as image:
            if min(image.size) >= crop:
                usable.append(path)
    if not usable:
        raise ValueError(f"No image in {source} is at least {crop}x{crop}; {hint}.")
    return usable


def draw_crop(rng: np.random.Generator, images: list[Path], crop: int) -> tuple[Path, list[int]]:
    """One of `images` and a random `crop`-pixel box `[left, top, right, bottom]` in it, drawn from `rng` (three
    draws, in the order every published manifest was made with)."""
    path = images[int(rng.integers(len(images)))]
    with Image.open(path) as image:
        width, height = image.size
    left, top = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
    return path, [left, top, left + crop, top + crop]


def build_div2k_val(
    source: Path,
    out_dir: Path,
    count: int = 600,
    crop: int = 1024,
    scale: int = 4,
    seed: int = 0,
    preset: str = "seesr",
) -> dict:
    """`count` random `crop`-pixel crops of DIV2K validation HR images, degraded like training data (LQ = crop/scale)."""
    from fluxir_hub.degradations import degrade

    usable = images_at_least(source, crop, "point --source at DIV2K_valid_HR")
    rng = np.random.default_rng(seed)
    entries = []
    for index in range(count):  # draw every crop first: the set does not depend on what is already on disk
        path, box = draw_crop(rng, usable, crop)
        entries.append(
            {
                "name": f"{index:04d}_{path.stem}",
                "source": path.name,
                "box": box,
                "degradation_seed": seed * 1_000_003 + index,
            }
        )
    for entry in tqdm(entries, desc="Building DIV2K-Val"):
        hq_path, lq_path = out_dir / "hq" / f"{entry['name']}.png", out_dir / "lq" / f"{entry['name']}.png"
        if hq_path.exists() and lq_path.exists():
            continue
        hq = load_image(source / entry["source"]).crop(tuple(entry["box"]))
        result = degrade(hq, preset=preset, scale=scale, seed=entry["degradation_seed"])
        _save(hq, hq_path)
        _save(result.lq, lq_path)
    manifest = {
        "benchmark": "div2k-val",
        "count": count,
        "crop": crop,
        "scale": scale,
        "seed": seed,
        "preset": preset,
        "entries": entries,
    }
    _write_manifest(out_dir, manifest)
    return manifest


def _pair_key(path: Path) -> str:
    # RealSR: Canon_001_HR.png / Canon_001_LR4.png; DRealSR: *_x1.png / *_x4.png
    return re.sub(r"_(hr|lr\d*|x\d+)$", "", path.stem, flags=re.IGNORECASE)


def _centre_crop(image: Image.Image, size: int, name: str) -> Image.Image:
    if min(image.size) < size:
        raise ValueError(f"{name} is {image.width}x{image.height}, smaller than the {size}px centre crop.")
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def check_pair_scale(hq_path: Path, lq_path: Path, scale: int, tolerance: float = 0.05) -> None:
    """Raise a `ValueError` naming both files unless the HQ is `scale` times the LQ on each side (within 5 %)."""
    with Image.open(hq_path) as hq, Image.open(lq_path) as lq:
        hq_size, lq_size = hq.size, lq.size
    ratios = [h / max(1, q) for h, q in zip(hq_size, lq_size, strict=True)]
    if any(abs(r - scale) > tolerance * scale for r in ratios):
        hint = (
            " The LR images are as large as the HR ones: this looks like a layout whose LR images were upsampled "
            "back to HR size; point --lq-source at the native low-resolution images."
            if hq_size == lq_size
            else ""
        )
        raise ValueError(
            f"{hq_path.name} is {hq_size[0]}x{hq_size[1]} and {lq_path.name} is {lq_size[0]}x{lq_size[1]}: not an "
            f"x{scale} pair (ratio {ratios[0]:.2f} x {ratios[1]:.2f}).{hint} Use --scale if the pairs are another factor."
        )


def build_paired(benchmark: str, hq_source: Path, lq_source: Path, out_dir: Path, hq_crop: int = 1024, scale: int = 4):
    """RealSR / DRealSR: HQ centre crop `hq_crop`, LQ centre crop `hq_crop / scale`, pairs matched by file name and
    checked to be `scale` apart in size."""
    if hq_crop % scale:
        raise ValueError(f"The HQ crop {hq_crop} must divide by the scale {scale}.")
    lq_crop = hq_crop // scale
    hq_files = {_pair_key(p): p for p in find_images([hq_source]).paths}
    lq_files = {_pair_key(p): p for p in find_images([lq_source]).paths}
    keys = sorted(set(hq_files) & set(lq_files))
    if not keys:
        raise ValueError(f"No HQ/LQ pairs with matching names in {hq_source} and {lq_source}.")
    for key in keys:  # every pair, before anything is written
        check_pair_scale(hq_files[key], lq_files[key], scale)
    unmatched = sorted(set(hq_files) ^ set(lq_files))
    for key in tqdm(keys, desc=f"Building {DISPLAY_NAMES[benchmark]}"):
        if (out_dir / "hq" / f"{key}.png").exists() and (out_dir / "lq" / f"{key}.png").exists():
            continue
        _save(_centre_crop(load_image(hq_files[key]), hq_crop, hq_files[key].name), out_dir / "hq" / f"{key}.png")
        _save(_centre_crop(load_image(lq_files[key]), lq_crop, lq_files[key].name), out_dir / "lq" / f"{key}.png")
    manifest = {
        "benchmark": benchmark,
        "count": len(keys),
        "hq_crop": hq_crop,
        "lq_crop": lq_crop,
        "scale": scale,
        "unmatched": unmatched,
    }
    _write_manifest(out_dir, manifest)
    return manifest


REALLQ250_COUNT, REALLQ250_SIZE = 250, (256, 256)


def build_lq_only(lq_source: Path, out_dir: Path) -> dict:
    """RealLQ250: the LQ images as they are (no ground truth). The published set is 250 images of 256x256; what
    differs is listed in the manifest's `differences` (and printed), since the paper's numbers need the full set."""
    files = find_images([lq_source]).paths
    if not files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {lq_source}.")
    differences = []
    if len(files) != REALLQ250_COUNT:
        differences.append(f"{len(files)} images instead of {REALLQ250_COUNT}")
    odd = []
    for path in files:
        with Image.open(path) as image:
            if image.size != REALLQ250_SIZE:
                odd.append(f"{path.name} is {image.width}x{image.height}")
    if odd:
        differences.append(f"{len(odd)} not {REALLQ250_SIZE[0]}x{REALLQ250_SIZE[1]} ({'; '.join(odd[:5])})")
    for path in tqdm(files, desc="Building RealLQ250"):
        target = out_dir / "lq" / f"{path.stem}.png"
        if not target.exists():
            _save(load_image(path), target)
    manifest = {"benchmark": "reallq250", "count": len(files), "differences": differences}
    _write_manifest(out_dir, manifest)
    return manifest


def build_tasks(
    source: Path,
    out_dir: Path,
    tasks: list[str] | None = None,
    count: int = 8,
    crop: int = 512,
    scale: int = 4,
    seed: int = 0,
) -> dict:
    """
    The all-in-one benchmark (paper 002's seven tasks): for each task, `count` seeded `crop`-pixel crops of the
    images in `source`, degraded with the task's preset (super-resolution: `seesr` at `scale`; the others keep the
    size). Names are `<task>_<index>_<source stem>`; the manifest records each entry's task for per-task reports.
    """
    from ..degradations import degrade
    from ..tasks import TASKS, get_task

    tasks = list(tasks or TASKS)
    for task in tasks:
        get_task(task)
    usable = images_at_least(source, crop, "use a smaller --crop or larger photos")
    rng = np.random.default_rng(seed)
    entries = []
    for task in tasks:  # every crop drawn first: the set does not depend on what is already on disk
        for index in range(count):
            path, box = draw_crop(rng, usable, crop)
            entries.append(
                {
                    "name": f"{task}_{index:03d}_{path.stem}",
                    "source": path.name,
                    "task": task,
                    "box": box,
                    "degradation_seed": seed * 1_000_003 + len(entries),
                }
            )
    for entry in tqdm(entries, desc="Building the task benchmark"):
        hq_path, lq_path = out_dir / "hq" / f"{entry['name']}.png", out_dir / "lq" / f"{entry['name']}.png"
        if hq_path.exists() and lq_path.exists():
            continue
        hq = load_image(source / entry["source"]).crop(tuple(entry["box"]))
        result = degrade(hq, preset=TASKS[entry["task"]].preset, scale=scale, seed=entry["degradation_seed"])
        _save(result.hq, hq_path)  # the target the LQ belongs to (sharpened for seesr, as FluxGen stores it)
        _save(result.lq, lq_path)
    manifest = {
        "benchmark": "tasks",
        "count": len(entries),
        "per_task": count,
        "tasks": tasks,
        "crop": crop,
        "scale": scale,
        "seed": seed,
        "entries": entries,
    }
    _write_manifest(out_dir, manifest)
    return manifest


def benchmark_tasks(bench_dir: Path) -> dict[str, str]:
    """`{name: task}` of a task benchmark (empty for the others)."""
    path = Path(bench_dir) / "benchmark.json"
    if not path.exists():
        return {}
    entries = json.loads(path.read_text()).get("entries", [])
    return {e["name"]: e["task"] for e in entries if "task" in e}


def benchmark_names(bench_dir: Path) -> list[str]:
    names = sorted(p.stem for p in (Path(bench_dir) / "lq").glob("*.png") if not p.name.startswith("."))
    if not names:
        raise ValueError(f"{bench_dir} has no lq/*.png; build it with `fluxir-eval build` first.")
    return names
