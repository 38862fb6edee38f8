"""`fluxir-eval`: reproduce paper 001's Table 1 for any method.

    fluxir-eval build div2k-val --source DIV2K_valid_HR -o bench/div2k-val         # 600 seeded 1024 crops, LQ 256
    fluxir-eval build realsr --source RealSR/HR --lq-source RealSR/LR -o bench/realsr
    fluxir-eval build reallq250 --source RealLQ250 -o bench/reallq250
    fluxir-eval restore bench/div2k-val -o results/div2k-val/bicubic --method bicubic
    fluxir-eval restore bench/div2k-val -o results/div2k-val/fluxir --method fluxir --adapter your-org/fluxir-adapter
    fluxir-eval score --bench div2k-val=bench/div2k-val realsr=bench/realsr --results results \
        --methods bicubic fluxir supir -o report --paper-reference

`score` reads `results/<benchmark>/<method>/<name>.png`, so any other method's outputs can be dropped in a folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fluxir_hub.cli import add_common_arguments, configure_logging, report_failure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fluxir-eval", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="make a benchmark folder from your local copy of a dataset")
    build.add_argument("benchmark", choices=["div2k-val", "realsr", "drealsr", "reallq250", "tasks"])
    build.add_argument(
        "--source",
        required=True,
        help="HR folder (DIV2K, RealSR, DRealSR, tasks: any clean photos) or the LQ folder (RealLQ250)",
    )
    build.add_argument(
        "--tasks",
        type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
        help="tasks benchmark: comma list (default: all seven)",
    )
    build.add_argument("--lq-source", help="LR folder for RealSR / DRealSR")
    build.add_argument("-o", "--output-dir", required=True)
    build.add_argument("--count", type=int, default=600, help="DIV2K-Val crops (600); tasks: crops per task")
    build.add_argument("--crop", type=int, default=1024, help="HQ crop side (1024); the LQ crop is crop / scale")
    build.add_argument("--scale", type=int, default=4, help="HQ / LQ size ratio (4)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--preset", default="seesr", help="DIV2K-Val degradation preset (seesr, as the paper)")

    restore = sub.add_parser("restore", help="restore a benchmark's LQ images with a built-in method")
    restore.add_argument("bench")
    restore.add_argument("-o", "--output-dir", required=True)
    restore.add_argument(
        "--method",
        choices=["bicubic", "fluxir", "realesrgan", "spandrel"],
        required=True,
        help="realesrgan: Real-ESRGAN x4plus, official weights, CPU (ncnn); spandrel: the checkpoint in --weights "
        "(both need the [baselines] extra)",
    )
    restore.add_argument("--weights", help="a checkpoint spandrel recognises (.safetensors, or .pth: tensors only)")
    restore.add_argument("--device", default=None, help="device of a spandrel model (default: cuda if present)")
    restore.add_argument("--upscale", type=int, default=4)
    restore.add_argument("--steps", type=int, default=None, help="default: a distilled adapter's schedule, else 20")
    restore.add_argument("--seed", type=int, default=0)
    restore.add_argument(
        "--model",
        default=None,
        help="base FLUX.1 id or folder with --adapter, or a whole FluxIRPipeline folder; default: FLUX.1-dev with "
        "--adapter, else the embedded mini model",
    )
    restore.add_argument("--adapter", help="FluxIR adapter id or folder (fluxir method)")
    restore.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow Python files in --model/--adapter this package did not write",
    )
    restore.add_argument("--tiny", action="store_true", help="the embedded tiny random pipeline (tests)")
    restore.add_argument(
        "--preset",
        choices=["default", "paper001"],
        default="default",
        help="paper001: as paper 001's Table 1 (no restoration sampling strategy, no colour fix); default: the "
        "pipeline's defaults (the adapter's restoration weight, else 0.05; wavelet colour fix)",
    )
    restore.add_argument(
        "--restoration-weight",
        "--fidelity",
        dest="restoration_weight",
        type=float,
        help="the pipeline's `restoration_weight` (the fidelity knob; overrides --preset)",
    )
    restore.add_argument("--color-fix", choices=["wavelet", "adain", "none"], help="(overrides --preset)")
    restore.add_argument("--guidance", type=float, default=3.5, help="distilled guidance scale (3.5)")
    restore.add_argument("--tile-size", type=int, default=None, help="latent tile side in output pixels (untiled)")

    score = sub.add_parser("score", help="score methods and write per-image CSVs and a Table-1-style report")
    score.add_argument("--bench", nargs="+", required=True, metavar="NAME=DIR")
    score.add_argument("--results", required=True, help="root holding <benchmark>/<method>/ folders")
    score.add_argument("--methods", nargs="+", required=True)
    score.add_argument("-o", "--output-dir", required=True)
    score.add_argument("--metrics", default="PSNR,SSIM,LPIPS,CLIPIQA,MUSIQ,MANIQA", help="paper names, comma list")
    score.add_argument("--paper-reference", action="store_true", help="add the paper's FluxIR column")
    score.add_argument("--device", default=None)
    return parser


def run_build(args) -> None:
    from fluxir_hub.evaluation.benchmarks import build_div2k_val, build_lq_only, build_paired

    out = Path(args.output_dir)
    if args.scale < 1:
        raise ValueError(f"--scale must be a positive integer, got {args.scale}.")
    if args.crop < 16 or args.crop % args.scale:
        raise ValueError(
            f"--crop {args.crop} must be at least 16 and divide by --scale {args.scale} so the LQ crop is whole "
            f"pixels (e.g. {max(16, args.crop // args.scale * args.scale)})."
        )
    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}.")
    if args.benchmark == "div2k-val":
        manifest = build_div2k_val(
            Path(args.source),
            out,
            count=args.count,
            crop=args.crop,
            scale=args.scale,
            seed=args.seed,
            preset=args.preset,
        )
    elif args.benchmark == "tasks":
        from fluxir_hub.evaluation.benchmarks import build_tasks

        manifest = build_tasks(
            Path(args.source),
            out,
            tasks=args.tasks,
            count=args.count,
            crop=args.crop,
            scale=args.scale,
            seed=args.seed,
        )
    elif args.benchmark == "reallq250":
        manifest = build_lq_only(Path(args.source), out)
    else:
        if not args.lq_source:
            raise ValueError(f"{args.benchmark} needs --lq-source (the LR folder) besides --source (HR).")
        manifest = build_paired(
            args.benchmark, Path(args.source), Path(args.lq_source), out, hq_crop=args.crop, scale=args.scale
        )
    print(f"{args.benchmark}: {manifest['count']} image(s) in {out}")
    for difference in manifest.get("differences", []):
        print(f"warning: this is not the published {args.benchmark} set: {difference}.", file=sys.stderr)


def load_baseline(args) -> tuple:
    """`(restorer, settings)` for `--method realesrgan|spandrel`."""
    import hashlib

    from fluxir_hub.evaluation.baselines import BaselineUnavailableError, RealESRGANNcnn, SpandrelRestorer

    try:
        if args.method == "realesrgan":
            return RealESRGANNcnn(), {"model": "Real-ESRGAN x4plus (official weights, ncnn, CPU)"}
        if not args.weights:
            raise ValueError("--method spandrel needs --weights FILE (an official checkpoint spandrel recognises).")
        import torch

        restorer = SpandrelRestorer(args.weights, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except BaselineUnavailableError as err:
        raise ValueError(str(err)) from None
    digest = hashlib.sha256(Path(args.weights).read_bytes()).hexdigest()[:16]
    return restorer, {"model": f"{restorer.name} x{restorer.scale} ({Path(args.weights).name}, sha256 {digest})"}


def run_restore(args) -> None:
    from fluxir_hub.evaluation.runner import adapter_identity, restore_benchmark

    pipe, kwargs, settings = None, {}, {}
    if args.method in ("realesrgan", "spandrel"):
        pipe, settings = load_baseline(args)
    elif args.method == "fluxir":
        from fluxir_hub.cli.restore import SetupError, load_pipeline

        setup = argparse.Namespace(
            tiny=args.tiny,
            adapter=args.adapter,
            adapter_revision=None,
            model=args.model,
            revision=None,
            dtype=None,
            offload="none",
            fp8_storage=False,
            prompt="",
            task=None,
            trust_remote_code=args.trust_remote_code,
        )
        try:
            pipe, description = load_pipeline(setup)
        except SetupError as err:
            raise ValueError(str(err)) from err
        import torch

        from fluxir_hub.distributed import process_state

        if torch.cuda.is_available():  # under `accelerate launch`, each process on its own GPU
            pipe.to(process_state().device)
        paper = args.preset == "paper001"
        kwargs = {
            "num_inference_steps": args.steps,
            # None: the pipeline's default for each image's task (0.05 / wavelet; off where the LQ's colours are wrong)
            "restoration_weight": args.restoration_weight
            if args.restoration_weight is not None
            else (0.0 if paper else None),
            "color_fix": args.color_fix or ("none" if paper else None),
            "guidance_scale": args.guidance,
            "tile_size": args.tile_size,
        }
        settings = {"model": description, **adapter_identity(pipe), "preset": args.preset, **kwargs}
    written = restore_benchmark(
        Path(args.bench), Path(args.output_dir), args.method, pipe, args.upscale, args.seed, settings, **kwargs
    )
    from fluxir_hub.distributed import process_state

    state = process_state()
    who = f"[process {state.process_index}] " if state.num_processes > 1 else ""
    print(f"{who}restore: wrote {written} image(s) to {args.output_dir}")


def run_score(args) -> None:
    from fluxir_hub.evaluation import create_scorers, render_table
    from fluxir_hub.evaluation.benchmarks import DISPLAY_NAMES
    from fluxir_hub.evaluation.runner import SETTINGS_NAME, score_results, task_means

    benches = {}
    for item in args.bench:
        if "=" not in item:
            raise ValueError(f"--bench takes NAME=DIR, got {item!r}.")
        name, folder = item.split("=", 1)
        benches[name] = Path(folder)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    scorers = create_scorers(metrics, device=args.device or "cpu")
    out = Path(args.output_dir)
    results, notes, summary = {}, {}, {}
    for name, folder in benches.items():
        display = DISPLAY_NAMES.get(name, name)
        results[display] = {}
        for method in args.methods:
            method_dir = Path(args.results) / name / method
            means, missing = score_results(folder, method_dir, scorers, out / name / f"{method}.csv")
            results[display][method] = means
            per_task = {} if missing else task_means(folder, out / name / f"{method}.csv")
            for task, task_mean in per_task.items():  # a task benchmark: a row group per task too
                results.setdefault(f"{display} / {task}", {})[method] = task_mean
            settings_path = method_dir / SETTINGS_NAME
            settings = json.loads(settings_path.read_text()) if settings_path.exists() else None
            summary[f"{name}/{method}"] = {"means": means, "missing": missing, "settings": settings}
            if per_task:
                summary[f"{name}/{method}"]["tasks"] = per_task
            if missing:
                total = len(list((folder / "lq").glob("*.png")))
                notes[(display, method)] = (
                    f"{len(missing)} of {total} results missing (e.g. {missing[0]}); no average reported."
                )
    table = render_table(results, metrics, notes, paper_reference=args.paper_reference)
    recorded = {key: value["settings"] for key, value in summary.items() if value["settings"]}
    if recorded:
        table += (
            "\nSettings used:\n\n"
            + "\n".join(
                f"- {key}: " + ", ".join(f"{k}={v}" for k, v in value.items()) for key, value in recorded.items()
            )
            + "\n"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table)
    for note in notes.values():
        print(f"warning: {note}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        {"build": run_build, "restore": run_restore, "score": run_score}[args.command](args)
    except (ValueError, OSError) as err:  # bad input, model lookups, disk full, permissions
        return report_failure("fluxir-eval", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
