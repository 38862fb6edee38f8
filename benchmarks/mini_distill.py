"""Few-step restoration on the mini model (paper 002 §5): uniform vs cost-aware schedules, before and after distillation.

    python benchmarks/mini_distill.py --work-dir mini-build                 # students for K = 4, 2, 1; uniform K = 2
    python benchmarks/mini_distill.py --work-dir mini-build --train-steps 50 --students 2 --uniform-students

Students are distilled with `fluxir-train --stage distill` from the shipped adapter on the mini FluxGen dataset (the
schedule is priced on training batches, never on the held-out photos), then scored like `mini_ablation.py`: PSNR, SSIM
and PIQE on seeded crops of the held-out photos degraded with `seesr` x4, and seconds per image. Every restoration
uses the pipeline's defaults otherwise (restoration sampling, wavelet colour fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


def distill(build, folder: Path, steps: int, num_student_steps: int, schedule: str, train_steps: int, lr: float,
            **settings):  # fmt: skip
    """Train (or reuse) one student (`settings`: other `fluxir-train` options, e.g. the loss weights)."""
    from training.trainer import Trainer

    if not (folder / "diffusion_pytorch_model.safetensors").exists() or (folder / "checkpoint-partial").exists():
        config = build.adapter_config(
            folder, stage="distill", adapter_init=str(build.adapter_dir), num_student_steps=num_student_steps,
            teacher_steps=steps, distill_schedule=schedule, max_train_steps=train_steps, learning_rate=lr,
            lr_scheduler="constant", lr_warmup_steps=0, checkpointing_steps=max(1, train_steps // 4), **settings,
        )  # fmt: skip
        Trainer(config).train()
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--students", type=int, nargs="*", default=[4, 2, 1], help="cost-aware students' step counts")
    parser.add_argument("--uniform-students", type=int, nargs="*", default=[2], help="uniform students' step counts")
    parser.add_argument("--train-steps", type=int, default=150, help="distillation steps per student")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--start-lq-weight", type=float, default=0.03, help="the LQ-mixed start variant's w")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/distill.json)")
    args = parser.parse_args(argv)

    import copy

    from benchmarks._common import ceiling, evaluate, markdown_table, open_mini_build, report, shipped_pipeline
    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.schedules import uniform_sigmas

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    teacher = shipped_pipeline(build)
    bench, seed, steps = build.build_bench(), config.seed, config.eval.num_inference_steps
    out = work / "distill-results"

    def run(name: str, pipe, kwargs: dict, note: str) -> None:
        results[name] = {**evaluate(pipe, bench, out / name.replace(" ", "-"), kwargs, seed), "note": note}
        print(f"{name}: {results[name]}", flush=True)

    results: dict[str, dict] = {"VAE round trip (ceiling)": ceiling(teacher.vae, bench, out / "vae-round-trip")}
    run("bicubic", None, {}, "")
    run(f"teacher, {steps} steps", teacher, {"num_inference_steps": steps}, "the shipped adapter")
    students = {}
    for k, mode in [*((k, "cost-aware") for k in args.students), *((k, "uniform") for k in args.uniform_students)]:
        folder = work / f"distill-{mode}-{k}"
        distill(build, folder, steps, k, mode, args.train_steps, args.learning_rate)
        students[(k, mode)] = folder
    for k in sorted({k for k, _ in students} | set(args.students), reverse=True):
        run(f"teacher, {k} uniform steps", teacher, {"sigmas": uniform_sigmas(k)}, "no distillation")
        cost_aware = students.get((k, "cost-aware"))
        if cost_aware is not None and k > 1:  # one jump is the same either way
            schedule = json.loads((cost_aware / "distill_schedule.json").read_text())
            run(f"teacher, {k} cost-aware steps", teacher, {"sigmas": schedule["sigmas"]},
                f"no distillation; grid points {schedule['indices']}")  # fmt: skip
        for mode in ("cost-aware", "uniform"):
            folder = students.get((k, mode))
            if folder is None:
                continue
            pipe = copy.copy(teacher)  # same base modules, the student adapter
            pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
            schedule = json.loads((folder / "distill_schedule.json").read_text())
            run(f"student, {k} {mode} steps", pipe, {},
                f"distilled {args.train_steps} steps; grid points {schedule['indices']}")  # fmt: skip

    # the authors' per-K settings (the defaults above) against the earlier ones, and their LQ-mixed start
    alternatives = [
        (4, "earlier weights (GT x300)", {"distill_gt_weight": 300.0}),
        (1, "earlier distance (MSE)", {"distill_distance": "mse"}),
        (4, f"LQ-mixed start (w = {args.start_lq_weight})", {"distill_start_lq_weight": args.start_lq_weight}),
    ]
    for k, what, settings in alternatives:
        if k not in args.students:
            continue
        folder = work / f"distill-cost-aware-{k}-{'-'.join(f'{key}{value}' for key, value in settings.items())}"
        distill(build, folder, steps, k, "cost-aware", args.train_steps, args.learning_rate, **settings)
        pipe = copy.copy(teacher)
        pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
        run(f"student, {k} cost-aware steps, {what}", pipe, {}, f"distilled {args.train_steps} steps")

    table = markdown_table(results, "notes")
    report(table, results, Path(args.output) if args.output else work / "distill.json", args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
