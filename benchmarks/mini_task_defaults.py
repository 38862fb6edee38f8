"""Choosing the all-in-one mini adapter's step count on validation crops of *training* photos, per task.

    python benchmarks/mini_task_defaults.py --work-dir mini-build

Seeded crops of 7 training photos (the same seeded choice as `mini_defaults.py`), degraded by each of the seven
tasks (`fluxir-eval build tasks`), restored by the shipped all-in-one adapter at 1, 2, 4 and 20 steps with each task's
own restoration weight and colour fix; PSNR / SSIM / PIQE per task and the input's. Nothing here reads a held-out
photo; the held-out numbers of a chosen setting come from `mini_tasks.py --steps`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks._common import report, validation_bench, work_dir_model  # noqa: E402

STEPS = (1, 2, 4, 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build")
    parser.add_argument("--photos-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-task", type=int, default=4, help="crops per task")
    parser.add_argument("--adapter", default=None, help="an all-in-one adapter folder (default: the shipped one)")
    args = parser.parse_args(argv)

    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.cli.evaluate import main as fluxir_eval
    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.evaluation.runner import restore_benchmark, score_results, task_means
    from fluxir_hub.mini import load_mini_pipeline

    work = Path(args.work_dir)
    validation_bench(work, Path(args.photos_dir) if args.photos_dir else None, args.seed)  # picks the photos
    photos = work / "validation-photos"
    bench = work / f"bench-validation-tasks-{args.per_task}"
    if not (bench / "lq").is_dir():
        argv_build = ["build", "tasks", "--source", str(photos), "--count", str(args.per_task), "--crop", "256",
                      "--scale", "4", "--seed", str(args.seed + 2), "-o", str(bench)]  # fmt: skip
        if fluxir_eval(argv_build) != 0:
            raise SystemExit("could not build the validation tasks bench")
    pipe = load_mini_pipeline(work_dir_model(work), device="cpu", task="denoise")  # the all-in-one adapter
    if args.adapter:
        pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(args.adapter).eval())
    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    out = work / "task-defaults"
    results = {}
    for name, steps in [("input", None), *((f"{s} steps", s) for s in STEPS)]:
        folder = out / name.replace(" ", "-")
        method = "bicubic" if steps is None else "fluxir"
        kwargs = {} if steps is None else {"num_inference_steps": steps}
        restore_benchmark(bench, folder, method, None if steps is None else pipe, 4, args.seed, {"model": name},
                          **kwargs)  # fmt: skip
        csv_path = folder.with_suffix(".csv")
        means, _ = score_results(bench, folder, scorers, csv_path)
        results[name] = {"all": means, "tasks": task_means(bench, csv_path)}
        print(name, {t: round(r["PSNR"], 2) for t, r in results[name]["tasks"].items()}, flush=True)
    names = list(results)
    lines = ["| task | " + " | ".join(f"{n} PSNR / SSIM / PIQE" for n in names) + " |",
             "|---|" + "---|" * len(names)]  # fmt: skip
    for task in [*results["input"]["tasks"], "all"]:
        cells = []
        for name in names:
            r = results[name]["all"] if task == "all" else results[name]["tasks"][task]
            cells.append(f"{r['PSNR']:.2f} / {r['SSIM']:.4f} / {r['PIQE']:.2f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    report("\n".join(lines), results, work / "task-defaults.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
