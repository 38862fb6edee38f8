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
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


@dataclass
class Variant:
    name: str
    adapter: str  # which adapter: shipped, zero, no-pixel-loss, rank-8, real-photos
    kwargs: dict = field(default_factory=dict)  # pipeline call settings beyond the defaults
    note: str = ""


VARIANTS = [
    Variant("mini FluxIR (20 steps)", "shipped", note="the shipped model, pipeline defaults"),
    Variant("zero-initialised adapter (base only)", "zero", note="untrained adapter: the base generator alone"),
    Variant("adapter only: no RSS, no colour fix", "shipped", {"restoration_weight": 0.0, "color_fix": "none"},
            "the adapter's own effect (paper 001's setting)"),
    Variant("zero adapter: no RSS, no colour fix", "zero", {"restoration_weight": 0.0, "color_fix": "none"},
            "the base generator alone: no information from the LQ at all"),
    Variant("adapter without pixel loss", "no-pixel-loss", note="fluxir-train --pixel_loss_weight 0"),
    Variant("SE rank 8", "rank-8", note="fluxir-train --rank 8 (shipped: 32)"),
    Variant("restoration weight 0", "shipped", {"restoration_weight": 0.0}, "paper 004's strategy off (shipped: 0.05)"),
    Variant("test-time scaling N=1", "shipped", {"tts": 1}, "greedy search off"),
    Variant("test-time scaling N=4", "shipped", {"tts": 4}, "4 candidates, reward: PIQE + entropy + LQ fidelity"),
    Variant("adapter trained on real photo patches", "real-photos",
            note="fluxir-train --hq_folder <256 px tiles of the training photos> (degraded on the fly) instead of "
                 "mini FluxGen data"),
]  # fmt: skip


def train_variant(build, which: str, folder: Path):
    """Train (or reuse) the adapter of one ablation with the build's adapter settings and one change."""
    from fluxir_hub.mini.photos import load_photo, photo_names
    from training.trainer import Trainer

    overrides = {
        "no-pixel-loss": {"pixel_loss_weight": 0.0},
        "rank-8": {"rank": 8},
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


def evaluate(pipe, bench: Path, out: Path, kwargs: dict, seed: int) -> dict:
    """Restore every benchmark image and score it against its HQ; returns mean metrics and seconds per image."""
    import numpy as np
    import torch
    from PIL import Image

    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.tts import IQAReward, TTSConfig

    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    call = dict(kwargs)
    candidates = call.pop("tts", None)
    if candidates:
        reward = IQAReward(metrics={"piqe": 1.0, "entropy": 1.0}, pretrained=False)
        call["tts"] = TTSConfig(num_candidates=candidates, reward=reward)
    out.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], []
    for lq_path in sorted((bench / "lq").glob("*.png")):
        lq = Image.open(lq_path).convert("RGB")
        hq = Image.open(bench / "hq" / lq_path.name).convert("RGB")
        start = time.perf_counter()
        if pipe is None:
            restored = lq.resize(hq.size, Image.BICUBIC)
        else:
            restored = pipe(
                lq, upscale=hq.width // lq.width, generator=torch.Generator().manual_seed(seed), **call
            ).images[0]
        seconds.append(time.perf_counter() - start)
        restored.save(out / lq_path.name)
        a, b = (
            torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None] for im in (restored, hq)
        )
        with torch.no_grad():
            rows.append({"PSNR": float(scorers["PSNR"](a, b)), "SSIM": float(scorers["SSIM"](a, b)),
                         "PIQE": float(scorers["PIQE"](a))})  # fmt: skip
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {**means, "seconds_per_image": float(np.mean(seconds)), "images": len(rows)}


def open_mini_build(work_dir: str):
    """The mini build in `work_dir` with its training stages done (kept when done; run if missing)."""
    from fluxir_hub.mini.config import MiniBuildConfig
    from training.mini.build import MiniBuild

    config = MiniBuildConfig.load(work_dir)
    if config is None:
        raise SystemExit(f"No mini build in {work_dir}: run `fluxir-build-mini --work-dir {work_dir}` first.")
    work = Path(work_dir)
    report = json.loads((work / "build_report.json").read_text()) if (work / "build_report.json").exists() else {}
    shipped = report.get("stages", {}).get("ship", {}).get("folder")
    build = MiniBuild(config, work, Path(shipped) if shipped else work / "model")
    build.run(["vae", "base", "fluxgen", "adapter"])
    return build


def shipped_pipeline(build):
    """The build's shipped pipeline (its stored weights, as users get them), else its base with its adapter;
    progress bars off."""
    from fluxir_hub import FluxIRAdapter, FluxIRPipeline
    from fluxir_hub.mini import has_mini_weights, load_mini_pipeline

    if has_mini_weights(build.output_dir):
        return load_mini_pipeline(build.output_dir, device="cpu")
    pipe = FluxIRPipeline.from_pretrained(build.base_dir, adapter=FluxIRAdapter.from_pretrained(build.adapter_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ceiling(vae, bench: Path, out: Path) -> dict:
    """The VAE's own round trip of each HQ, scored like a method: no restoration through this VAE can beat it."""
    import numpy as np
    import torch
    from PIL import Image

    from fluxir_hub.evaluation.metrics import create_scorers
    from training.mini.gallery import vae_round_trip

    vae_round_trip(vae, bench, out)
    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    rows = []
    for path in sorted((out).glob("*.png")):
        a, b = (
            torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
            for p in (path, bench / "hq" / path.name)
        )
        with torch.no_grad():
            rows.append(
                {name: float(scorer(a, b) if name != "PIQE" else scorer(a)) for name, scorer in scorers.items()}
            )
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {**means, "seconds_per_image": 0.0, "images": len(rows), "note": "encode + decode of the ground truth"}


def markdown_table(results: dict[str, dict], note_header: str) -> str:
    """The README's table of `evaluate` results, one row per method."""
    lines = [f"| method | PSNR ↑ | SSIM ↑ | PIQE ↓ | s/image | {note_header} |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['PIQE']:.2f} | {r['seconds_per_image']:.2f} | {r['note']} |"
        )
    return "\n".join(lines)


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

    from fluxir_hub.mini.config import MiniBuildConfig
    from training.mini.build import MiniBuild

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
    for variant in VARIANTS:
        if args.adapters and variant.adapter not in args.adapters:
            continue
        pipe = load_variant_pipeline(build, variant.adapter, shipped)
        folder = work / "ablation-results" / variant.name.replace(" ", "-")
        results[variant.name] = {
            **evaluate(pipe, bench, folder, {"num_inference_steps": steps, **variant.kwargs}, seed),
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
