"""Ablations of the mini FluxIR model on the held-out photos (never used in training): what each part is worth.

    python benchmarks/mini_ablation.py                          # reuses ./mini-build (runs the build stages it lacks)
    python benchmarks/mini_ablation.py --work-dir mini-build --scale 0.05   # quick smoke run

Every adapter variant is trained with the shipped adapter's settings (same data, steps, seed) except the one thing
ablated; every restoration uses the same seed. Scores: PSNR / SSIM (higher is better) and PIQE (lower is better) on
seeded crops of the held-out photos degraded with `seesr` x4, plus seconds per image.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks._common import ceiling, evaluate, markdown_table, open_mini_build, shipped_pipeline  # noqa: E402


@dataclass
class Variant:
    name: str
    adapter: str  # which adapter: shipped, zero, no-pixel-loss, rank-8, real-photos
    kwargs: dict = field(default_factory=dict)  # pipeline call settings beyond the defaults
    note: str = ""
    at_defaults: bool = False  # sample with the shipped adapter's own defaults instead of the 20-step reference


VARIANTS = [
    Variant("mini FluxIR, shipped defaults", "shipped", note="the shipped model as users get it", at_defaults=True),
    Variant("zero-initialised adapter at the shipped defaults", "zero", at_defaults=True,
            note="the same sampling settings, untrained adapter: what training the adapter is worth"),
    Variant("mini FluxIR (20 steps)", "shipped", note="the shipped model at 20 steps, its other defaults"),
    Variant("zero-initialised adapter (base only)", "zero", note="untrained adapter: the base generator alone"),
    Variant("adapter only: no RSS, no colour fix", "shipped", {"restoration_weight": 0.0, "color_fix": "none"},
            "the adapter's own effect (paper 001's setting)"),
    Variant("zero adapter: no RSS, no colour fix", "zero", {"restoration_weight": 0.0, "color_fix": "none"},
            "the base generator alone: no information from the LQ at all"),
    Variant("adapter without pixel loss", "no-pixel-loss", note="fluxir-train --pixel_loss_weight 0"),
    Variant("SE rank 8", "rank-8", note='fluxir-train --conditioning_options "{rank: 8}" (shipped: 32)'),
    Variant("restoration weight 0", "shipped", {"restoration_weight": 0.0}, "paper 004's strategy off (20 steps)"),
    Variant("test-time scaling N=1", "shipped", {"tts": 1}, "greedy search off"),
    Variant("test-time scaling N=4", "shipped", {"tts": 4}, "4 candidates, reward: PIQE + entropy + LQ fidelity"),
    Variant("adapter trained on real photo patches", "real-photos",
            note="fluxir-train --hq_folder <256 px tiles of the training photos> (degraded on the fly) instead of "
                 "mini FluxGen data"),
]  # fmt: skip


def train_variant(build, which: str, folder: Path):
    """Train (or reuse) the adapter of one ablation with the build's adapter settings and one change."""
    from training.mini.photos import load_photo, photo_names
    from training.trainer import Trainer

    overrides = {
        "no-pixel-loss": {"pixel_loss_weight": 0.0},
        "rank-8": {"conditioning_options": {"rank": 8}},
        "real-photos": {"dataset": None, "hq_folder": None},
    }[which]
    if which == "real-photos":
        photos = build.work / "train-photos"
        photos.mkdir(exist_ok=True)
        # Tiles, not whole photos: 256 px, near the FluxGen images' size, from every training photo.
        tile = 256
        for name in photo_names("train"):
            photo = load_photo(name)
            for top in range(0, photo.height - tile + 1, tile):
                for left in range(0, photo.width - tile + 1, tile):
                    photo.crop((left, top, left + tile, top + tile)).save(photos / f"{name}_{top}_{left}.png")
        overrides["hq_folder"] = str(photos)
        overrides["degradation_preset"] = build.config.fluxgen.preset
    if not (folder / "diffusion_pytorch_model.safetensors").exists() or (folder / "checkpoint-partial").exists():
        Trainer(build.adapter_config(folder, **overrides)).train()
    return folder


def load_variant_pipeline(build, which: str, shipped):
    """The shipped pipeline with the variant's adapter swapped in (the base and VAE are shared)."""
    import copy

    from fluxir_hub import FluxIRAdapter

    if which == "shipped":
        return shipped
    pipe = copy.copy(shipped)  # a shallow copy: same base modules, its own adapter
    if which == "zero":
        adapter = FluxIRAdapter.from_transformer(
            shipped.transformer,
            rank=shipped.adapter.config.rank,
            max_sequence_length=shipped.adapter.config.max_sequence_length,
        )
        adapter.set_empty_prompt_embeds(*shipped.adapter.get_empty_prompt_embeds())
    else:
        adapter = FluxIRAdapter.from_pretrained(train_variant(build, which, build.work / f"ablation-{which}"))
    pipe.register_modules(adapter=adapter.eval())
    return pipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--scale", type=float, default=1.0, help="as fluxir-build-mini --scale (smoke tests)")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/ablation.json)")
    parser.add_argument(
        "--adapters",
        nargs="+",
        choices=sorted({v.adapter for v in VARIANTS}),
        default=None,
        help="only the rows of these adapters (default all; `shipped zero` trains nothing)",
    )
    args = parser.parse_args(argv)

    from training.mini.build import MiniBuild
    from training.mini.config import MiniBuildConfig

    if MiniBuildConfig.load(args.work_dir) is None:  # a fresh work dir: build the training stages first
        config = MiniBuildConfig() if args.scale == 1.0 else MiniBuildConfig().scaled(args.scale)
        MiniBuild(config, Path(args.work_dir), Path(args.work_dir) / "model").run(["photos", "vae", "base"])
    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    shipped = shipped_pipeline(build)
    bench = build.build_bench()
    seed = config.seed
    steps = config.eval.num_inference_steps

    results = {
        "VAE round trip (ceiling)": ceiling(shipped.vae, bench, work / "ablation-results" / "vae-round-trip"),
        "bicubic": {**evaluate(None, bench, work / "ablation-results" / "bicubic", {}, seed), "note": ""},
    }

    def sampling(variant: Variant) -> dict:
        if variant.at_defaults:  # written out: the zero adapter has no defaults of its own
            return dict(shipped.adapter.config.get("sampling_defaults") or {})
        return {"num_inference_steps": steps}

    for variant in VARIANTS:
        if args.adapters and variant.adapter not in args.adapters:
            continue
        pipe = load_variant_pipeline(build, variant.adapter, shipped)
        folder = work / "ablation-results" / variant.name.replace(" ", "-")
        results[variant.name] = {
            **evaluate(pipe, bench, folder, {**sampling(variant), **variant.kwargs}, seed),
            "note": variant.note,
        }
        print(f"{variant.name}: {results[variant.name]}", flush=True)

    table = markdown_table(results, "what changes")
    print(table)
    output = Path(args.output) if args.output else work / "ablation.json"
    output.write_text(json.dumps({"config": config.to_dict(), "results": results, "table": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
