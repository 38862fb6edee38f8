"""The all-in-one mini model (paper 002's seven tasks): does one adapter restore every degradation better than the
input?

    python benchmarks/mini_tasks.py --work-dir mini-build                 # mixed data, all-in-one adapter, scores
    python benchmarks/mini_tasks.py --work-dir mini-build --train-steps 50 --per-task 1    # smoke run

1. The mini FluxGen images are degraded again with `--preset mixed` (the authors' task mix) into a second build.
2. An all-in-one adapter is fine-tuned from the shipped super-resolution adapter on those pairs with each task's
   prompt (`fluxir-train --task_prompts on`), with the shipped adapter's other settings.
3. `fluxir-eval build tasks` makes seeded crops of the held-out photos (never trained on) for each task; the input
   (bicubic for super-resolution, the LQ itself otherwise), the shipped super-resolution adapter (blind: it has no
   task prompts) and the all-in-one adapter (told the task) are scored per task: PSNR / SSIM / PIQE.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


def mixed_dataset(build) -> Path:
    """The mini FluxGen images with `mixed` LQs (the kept images are reused; only the degradation is redone)."""
    from dataset_builder.cli import main as fluxgen

    source, folder = build.work / "fluxgen", build.work / "fluxgen-mixed"
    if not (folder / "dataset" / "README.md").exists():
        if not folder.exists():
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns("lq", "dataset"))
        for stage in ("degrade", "export"):
            if fluxgen([stage, "-o", str(folder), "--preset", "mixed", "--resume"]) != 0:
                raise ValueError(f"`fluxgen {stage}` failed; its message is above.")
    return folder / "dataset"


def train_all_in_one(build, dataset: Path, folder: Path, steps: int, task_prompts: str) -> Path:
    from training.trainer import Trainer

    if not (folder / "diffusion_pytorch_model.safetensors").exists() or (folder / "checkpoint-partial").exists():
        config = build.adapter_config(
            folder, dataset=str(dataset), adapter_init=str(build.adapter_dir), max_train_steps=steps,
            task_prompts=task_prompts, lr_warmup_steps=min(50, steps // 10),
        )  # fmt: skip
        Trainer(config).train()
    return folder


def vae_round_trip(pipe, bench: Path, folder: Path) -> None:
    """Each HQ through the mini VAE and back: the ceiling of any latent restoration with this VAE."""
    import numpy as np
    import torch
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    vae = pipe.vae
    for path in sorted((bench / "hq").glob("*.png")):
        if (folder / path.name).exists():
            continue
        hq = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1)
        with torch.no_grad():
            latents = vae.encode(hq.permute(2, 0, 1)[None]).latent_dist.mode()
            image = vae.decode(latents, return_dict=False)[0]
        array = ((image[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        Image.fromarray(array).save(folder / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--train-steps", type=int, default=1500, help="fine-tuning steps of the all-in-one adapter")
    parser.add_argument("--per-task", type=int, default=4, help="held-out crops per task")
    parser.add_argument("--blind", action="store_true", help="also train the ablation without task prompts")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/tasks.json)")
    args = parser.parse_args(argv)

    import copy

    from benchmarks.mini_ablation import open_mini_build, shipped_pipeline
    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.cli.evaluate import main as fluxir_eval
    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.evaluation.runner import restore_benchmark, score_results, task_means
    from fluxir_hub.mini.photos import load_photo, photo_names

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    dataset = mixed_dataset(build)
    variants = {"all-in-one": train_all_in_one(build, dataset, work / "allinone-adapter", args.train_steps, "on")}
    if args.blind:
        variants["all-in-one, no task prompts"] = train_all_in_one(
            build, dataset, work / "allinone-blind-adapter", args.train_steps, "off"
        )

    photos = work / "heldout-photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in photo_names("heldout"):
        load_photo(name).save(photos / f"{name}.png")
    bench = work / f"bench-tasks-{args.per_task}"
    argv = ["build", "tasks", "--source", str(photos), "--count", str(args.per_task), "--crop", str(config.eval.crop),
            "--scale", str(config.eval.scale), "--seed", str(config.seed), "-o", str(bench)]  # fmt: skip
    if fluxir_eval(argv) != 0:
        raise ValueError("`fluxir-eval build tasks` failed; its message is above.")

    shipped = shipped_pipeline(build)
    pipes = {"input (bicubic / as is)": None, "super-resolution adapter (blind)": shipped}
    for name, folder in variants.items():
        pipe = copy.copy(shipped)  # same base modules, another adapter
        pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
        pipes[name] = pipe

    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    out = work / "tasks-results" / bench.name
    results = {}
    ceiling = out / "vae-round-trip"
    vae_round_trip(shipped, bench, ceiling)
    means, _ = score_results(bench, ceiling, scorers, ceiling.with_suffix(".csv"))
    results["VAE round trip of the HQ (ceiling)"] = {
        "all": means,
        "tasks": task_means(bench, ceiling.with_suffix(".csv")),
    }
    for name, pipe in pipes.items():
        folder = out / name.split(" (")[0].replace(" ", "-").replace(",", "")
        method = "bicubic" if pipe is None else "fluxir"
        restore_benchmark(bench, folder, method, pipe, config.eval.scale, config.seed,
                          {"model": name, "num_inference_steps": config.eval.num_inference_steps},
                          **({} if pipe is None else {"num_inference_steps": config.eval.num_inference_steps}))  # fmt: skip
        csv_path = folder.with_suffix(".csv")
        means, _ = score_results(bench, folder, scorers, csv_path)
        results[name] = {"all": means, "tasks": task_means(bench, csv_path)}
        print(f"{name}: {results[name]}", flush=True)

    names = list(results)
    lines = ["| task | " + " | ".join(f"{n} PSNR / SSIM / PIQE" for n in names) + " | gain over input (dB) |",
             "|---|" + "---|" * (len(names) + 1)]  # fmt: skip
    tasks = list(results[names[0]]["tasks"]) + ["all"]
    for task in tasks:
        cells = []
        for name in names:
            r = results[name]["all"] if task == "all" else results[name]["tasks"][task]
            cells.append(f"{r['PSNR']:.2f} / {r['SSIM']:.4f} / {r['PIQE']:.2f}")
        best = results["all-in-one"]["all" if task == "all" else "tasks"]
        base = results["input (bicubic / as is)"]["all" if task == "all" else "tasks"]
        gain = (best if task == "all" else best[task])["PSNR"] - (base if task == "all" else base[task])["PSNR"]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {gain:+.2f} |")
    table = "\n".join(lines)
    print(table)
    output = Path(args.output) if args.output else work / "tasks.json"
    output.write_text(json.dumps({"results": results, "table": table, "args": vars(args)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
