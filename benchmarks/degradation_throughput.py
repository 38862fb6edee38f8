"""Degradation throughput (512x512 HQ -> 128x128 LQ, `seesr` preset) on this CPU, and tiny FluxGen generate+score.

    python benchmarks/degradation_throughput.py [--images 64]

Prints images/s with 1 worker (torch may use every core), 2 worker processes (one thread each), the share of time
each degradation step takes, and generated/scored images per second with the tiny offline FLUX.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks._common import HQ_SIDE, hq_images  # noqa: E402


def _worker(args):
    import torch

    from dataset_builder import degrade

    torch.set_num_threads(1)
    images, seeds = args
    for image, seed in zip(images, seeds, strict=True):
        degrade(image, seed=seed)
    return len(seeds)


def stage_shares(images) -> dict[str, float]:
    """Time each step of `apply_degradation` by wrapping the module's step functions."""
    from fluxir_hub.degradations import presets, realesrgan

    totals: dict[str, float] = defaultdict(float)
    # each step is patched where the Real-ESRGAN code looks it up
    modules = {name: realesrgan for name in ["usm_sharpen", "filter2d", "resize", "add_noise", "jpeg"]}
    modules["sample_realesrgan"] = presets
    names = list(modules)
    originals = {name: getattr(module, name) for name, module in modules.items()}

    def timed(name):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - start

        return wrapper

    for name, module in modules.items():
        setattr(module, name, timed(name))
    try:
        start = time.perf_counter()
        for seed, image in enumerate(images):
            presets.degrade(image, seed=seed)
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(modules[name], name, fn)
    # usm_sharpen's own blurs are not filter2d calls, so the shares do not overlap
    shares = {name: totals[name] / total for name in names}
    shares["other (tensor conversion, kernels)"] = 1 - sum(shares.values())
    return shares


def tiny_fluxgen(n: int) -> tuple[float, float]:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dataset_builder.config import GenerateConfig, ScoreConfig
    from dataset_builder.generate import generate_images
    from dataset_builder.score import score_images

    with tempfile.TemporaryDirectory() as root:
        gen = GenerateConfig(model="tiny", width=128, height=96, num_inference_steps=2, seed_end=n, dtype="float32",
                             batch_size=8)  # fmt: skip
        start = time.perf_counter()
        generate_images(root, gen, show_progress=False)
        generate_rate = n / (time.perf_counter() - start)
        start = time.perf_counter()
        score_images(root, ScoreConfig(metrics=["piqe", "entropy", "musiq"], pretrained=False), show_progress=False)
        score_rate = n / (time.perf_counter() - start)
    return generate_rate, score_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    images = hq_images(args.images)
    seeds = list(range(args.images))

    from dataset_builder import degrade

    degrade(images[0], seed=0)  # warm-up
    start = time.perf_counter()
    for image, seed in zip(images, seeds, strict=True):
        degrade(image, seed=seed)
    one = args.images / (time.perf_counter() - start)

    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_worker, [(images[:2], [0, 1])] * 2)  # warm-up imports
        start = time.perf_counter()
        halves = [(images[i::2], seeds[i::2]) for i in range(2)]
        pool.map(_worker, halves)
        two = args.images / (time.perf_counter() - start)

    print(
        f"Degradation, seesr preset, {HQ_SIDE}x{HQ_SIDE} HQ -> {HQ_SIDE // 4}x{HQ_SIDE // 4} LQ, {args.images} images"
    )
    print(f"  1 worker  : {one:6.1f} images/s")
    print(f"  2 workers : {two:6.1f} images/s")
    print("  time shares (1 worker):")
    for name, share in sorted(stage_shares(images[:32]).items(), key=lambda kv: -kv[1]):
        print(f"    {name:36s} {100 * share:5.1f} %")
    generate_rate, score_rate = tiny_fluxgen(min(32, args.images))
    print("Tiny FluxGen (random tiny FLUX, 128x96, 2 steps; piqe + entropy + musiq(random weights))")
    print(f"  generate  : {generate_rate:6.1f} images/s")
    print(f"  score     : {score_rate:6.1f} images/s")


if __name__ == "__main__":
    main()
