"""The conditioning zoo on the mini model (paper 003's comparison): the FluxIR adapter, UMMF, UMMF's "direct
addition" ablation and DRA's restoration adapter, trained the same way and scored on the held-out photos.

    python benchmarks/mini_conditioning.py --work-dir mini-build                  # 1000 steps each
    python benchmarks/mini_conditioning.py --work-dir mini-build --train-steps 5  # smoke run

Every variant is trained from scratch (a fresh component; the base frozen) with `fluxir-train --conditioning ...` on
the same mini FluxGen pairs, with the shipped adapter's settings otherwise (same steps, batch, crops, learning rate,
pixel loss, seed), then restores the held-out crops (seesr x4) with the pipeline's defaults and 20 steps. Reported:
PSNR / SSIM / PIQE, trainable parameters (on the mini model and, counted on the meta device, at FLUX.1-dev size),
seconds per training step and seconds per restored image on this CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

VARIANTS = {
    "FluxIR adapter": ("fluxir", "paper 001: one MM-DiT block + per-block SE (rank 32)"),
    "UMMF": ("ummf", "paper 003: LQ tokens in the joint attention, LoRA r16 on attention + MLP"),
    "direct addition": ("ummf-add", "LQ latent added to the noisy tokens, the same LoRA"),
    "DRA adapter": ("dra", "paper 004: adapter stages after every 4th block + LoRA r32 on attention"),
}


def train(build, conditioning: str, folder: Path, steps: int) -> dict:
    from training.trainer import Trainer

    timing = folder / "train_timing.json"
    if not timing.exists():
        trainer = Trainer(build.adapter_config(folder, conditioning=conditioning, max_train_steps=steps,
                                               checkpointing_steps=max(1, steps // 4)))  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        timing.write_text(json.dumps({"seconds_per_step": seconds / steps, "trainable": trainable}) + "\n")
    return json.loads(timing.read_text())


def full_size_counts() -> dict[str, int]:
    """Trainable parameters of each variant at FLUX.1-dev size, counted on the meta device."""
    import torch
    from diffusers import FluxTransformer2DModel

    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.models.adapter_dra import DRAAdapter
    from fluxir_hub.models.conditioning_ummf import UMMF_LORA_TARGETS, lora_parameter_count

    with torch.device("meta"):
        base = FluxTransformer2DModel(guidance_embeds=True)
        fluxir = sum(
            p.numel() for p in FluxIRAdapter.from_transformer(base, load_weights_from_transformer=False).parameters()
        )
        dra = sum(p.numel() for p in DRAAdapter.from_transformer(base).parameters())
    ummf = lora_parameter_count(base, UMMF_LORA_TARGETS, 16)
    return {
        "fluxir": fluxir,
        "ummf": ummf,
        "ummf-add": ummf,
        "dra": dra,  # its LoRA diffusion adapter is part of the component
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--train-steps", type=int, default=1000, help="training steps of every variant")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/conditioning.json)")
    args = parser.parse_args(argv)

    from benchmarks._common import ceiling, evaluate, open_mini_build, report, shipped_pipeline

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    bench, seed, steps = build.build_bench(), config.seed, config.eval.num_inference_steps
    counts = full_size_counts()
    bound = ceiling(shipped_pipeline(build).vae, bench, work / "conditioning-results" / "vae-round-trip")
    results = {"bicubic": {**evaluate(None, bench, work / "conditioning-results" / "bicubic", {}, seed)}}
    for name, (conditioning, note) in VARIANTS.items():
        folder = work / f"conditioning-{conditioning}-{args.train_steps}"
        timing = train(build, conditioning, folder, args.train_steps)
        pipe = shipped_pipeline(build)  # a fresh base per variant: no LoRA or hooks left from the one before
        pipe.load_conditioning(folder)
        scores = evaluate(
            pipe, bench, work / "conditioning-results" / folder.name, {"num_inference_steps": steps}, seed
        )
        results[name] = {**scores, **timing, "full_size_trainable": counts[conditioning], "note": note}
        print(f"{name}: {results[name]}", flush=True)

    lines = ["| conditioning | PSNR ↑ | SSIM ↑ | PIQE ↓ | trainable (mini) | trainable (FLUX.1-dev) | s/train step | "
             "s/image | what |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        if name == "bicubic":
            lines.append(f"| bicubic | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['PIQE']:.2f} | | | | 0.00 | |")
            continue
        lines.append(
            f"| {name} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['PIQE']:.2f} | {r['trainable'] / 1e6:.2f} M | "
            f"{r['full_size_trainable'] / 1e6:.1f} M | {r['seconds_per_step']:.2f} | {r['seconds_per_image']:.2f} | "
            f"{r['note']} |"
        )
    lines.append(
        f"| VAE round trip (ceiling) | {bound['PSNR']:.2f} | {bound['SSIM']:.4f} | {bound['PIQE']:.2f} | | | | | |"
    )
    results["VAE round trip (ceiling)"] = bound
    table = "\n".join(lines)
    report(table, results, Path(args.output) if args.output else work / "conditioning.json", args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
