"""`fluxgen`: build synthetic LQ/HQ restoration pairs with FLUX (paper 001 §3.1).

    fluxgen run -o fluxgen_out --seed-end 350000 --push your-org/fluxgen-pairs     # everything, in order
    fluxgen generate -o fluxgen_out --seed-end 1000                               # or stage by stage
    accelerate launch --multi_gpu --num_processes 8 -m dataset_builder.cli generate -o fluxgen_out --seed-end 350000
    fluxgen score -o fluxgen_out && fluxgen select -o fluxgen_out && fluxgen degrade -o fluxgen_out
    fluxgen export -o fluxgen_out && fluxgen push -o fluxgen_out --repo-id your-org/fluxgen-pairs
    fluxgen run -o demo_pairs --tiny                                               # offline, tiny random FLUX

Every stage is resumable: rerun the same command after an interruption and it continues where it stopped. The
resolved settings are saved in `<output>/fluxgen_config.json`; later stages read them from there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from fluxir_hub.cli import add_common_arguments, configure_logging, report_failure
from fluxir_hub.distributed import process_state, stop_if_any_failed

from .config import (
    FluxGenConfig,
    config_differences,
)
from .io_utils import BuildLayout, claim_folder, release_folder

STAGES = ("generate", "score", "select", "degrade", "export", "push", "run")
TINY_OVERRIDES = {
    "generate": {
        "model": "tiny",
        "width": 128,
        "height": 96,
        "num_inference_steps": 2,
        "seed_end": 8,
        "dtype": "float32",
    },
    "score": {"metrics": ["piqe", "entropy", "musiq"], "pretrained": False},
    "select": {"quantile": 0.2},  # a tiny pool: drop a visible share
    "export": {"validation_fraction": 0.25},
}

# CLI flag -> (config section, field)
OPTIONS = {
    "model": ("generate", "model"),
    "revision": ("generate", "revision"),
    "prompts": ("generate", "prompts_file"),
    "guidance_scale": ("generate", "guidance_scale"),
    "steps": ("generate", "num_inference_steps"),
    "width": ("generate", "width"),
    "height": ("generate", "height"),
    "seed_start": ("generate", "seed_start"),
    "seed_end": ("generate", "seed_end"),
    "batch_size": ("generate", "batch_size"),
    "dtype": ("generate", "dtype"),
    "metrics": ("score", "metrics"),
    "score_batch_size": ("score", "batch_size"),
    "quantile": ("select", "quantile"),
    "preset": ("degrade", "preset"),
    "sharpen_target": ("degrade", "sharpen_target"),
    "scale": ("degrade", "scale"),
    "task_weights": ("degrade", "task_weights"),
    "num_workers": ("degrade", "num_workers"),
    "validation_fraction": ("export", "validation_fraction"),
    "rows_per_shard": ("export", "rows_per_shard"),
}


def _task_weights(text: str) -> dict[str, float]:
    from fluxir_hub.degradations import parse_weights

    try:
        return parse_weights(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    from fluxir_hub.degradations import DEFAULT_WEIGHTS, PRESETS

    from .config import DegradeConfig, ExportConfig, GenerateConfig, ScoreConfig, SelectConfig

    gen_d, score_d, select_d, degrade_d, export_d = (
        GenerateConfig(),
        ScoreConfig(),
        SelectConfig(),
        DegradeConfig(),
        ExportConfig(),
    )
    parser = argparse.ArgumentParser(
        prog="fluxgen",
        description=__doc__.splitlines()[0],
        epilog="Options left out keep the build's stored settings (fluxgen_config.json), or the defaults shown.",
    )
    add_common_arguments(parser)
    parser.add_argument("stage", choices=STAGES, help="one stage, or run for all of them in order")
    parser.add_argument("-o", "--output-dir", required=True, help="build folder (created by generate/run)")
    parser.add_argument("--tiny", action="store_true", help="tiny offline FLUX and offline metrics (tests, demos)")
    parser.add_argument("--resume", action="store_true", help="continue a build even if settings changed")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing build in the folder first")
    gen = parser.add_argument_group("generate")
    gen.add_argument("--model", help=f"FLUX text-to-image model: Hub id or folder (default {gen_d.model})")
    gen.add_argument("--revision", help="revision of --model (default: the latest)")
    gen.add_argument("--prompts", help="file with one prompt per line, image i takes line i mod n (default: empty)")
    gen.add_argument("--guidance-scale", type=float, help=f"distilled guidance (default {gen_d.guidance_scale})")
    gen.add_argument("--steps", type=int, help=f"sampling steps (default {gen_d.num_inference_steps})")
    gen.add_argument("--width", type=int, help=f"image width, a multiple of 16 (default {gen_d.width})")
    gen.add_argument("--height", type=int, help=f"image height, a multiple of 16 (default {gen_d.height})")
    gen.add_argument("--seed-start", type=int, help=f"first seed (default {gen_d.seed_start})")
    gen.add_argument("--seed-end", type=int, help=f"seed after the last, exclusive (default {gen_d.seed_end})")
    gen.add_argument("--batch-size", type=int, help=f"images per generation call (default {gen_d.batch_size})")
    gen.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], help=f"(default {gen_d.dtype})")
    other = parser.add_argument_group("score / select / degrade / export / push")
    other.add_argument(
        "--metrics",
        type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
        help=f"pyiqa metrics, comma separated (default {','.join(score_d.metrics)})",
    )
    other.add_argument("--score-batch-size", type=int, help=f"images per scoring batch (default {score_d.batch_size})")
    other.add_argument(
        "--quantile",
        type=float,
        help=f"keep images at or above this quantile of every metric (default {select_d.quantile})",
    )
    other.add_argument("--preset", choices=sorted(PRESETS), help=f"degradation preset (default {degrade_d.preset})")
    other.add_argument(
        "--sharpen-target",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store the unsharp-masked HQ as the target (default: on for seesr/realesrgan, as they train)",
    )
    other.add_argument(
        "--scale",
        type=int,
        help=f"super-resolution HQ / LQ size ratio (default {degrade_d.scale}; other tasks keep the size)",
    )
    other.add_argument(
        "--task-weights",
        type=_task_weights,
        help="with --preset mixed: task=weight pairs, e.g. sr=5,motion_blur=2,denoise=2 (default: the authors' mix "
        f"{','.join(f'{k}={v:g}' for k, v in DEFAULT_WEIGHTS.items())})",
    )
    other.add_argument(
        "--num-workers",
        type=int,
        help=f"CPU processes degrading within each FluxGen process (default {degrade_d.num_workers}; same LQs for any "
        "number)",
    )
    other.add_argument(
        "--validation-fraction",
        type=float,
        help=f"share of pairs in the validation split (default {export_d.validation_fraction})",
    )
    other.add_argument(
        "--rows-per-shard",
        type=int,
        help=f"at most this many rows per parquet shard (default {export_d.rows_per_shard})",
    )
    other.add_argument("--repo-id", help="Hub dataset repo for push (and the card's loading example)")
    other.add_argument("--private", action="store_true", help="create the dataset repo as private")
    return parser


def resolve_config(args: argparse.Namespace, stored: FluxGenConfig | None) -> FluxGenConfig:
    """Stored settings, then --tiny defaults, then explicit flags."""
    config = stored or FluxGenConfig()
    if args.tiny and stored is None:
        sections = {name: replace(getattr(config, name), **values) for name, values in TINY_OVERRIDES.items()}
        config = replace(config, **sections)
    for flag, (section, key) in OPTIONS.items():
        value = getattr(args, flag)
        if value is not None:
            config = replace(config, **{section: replace(getattr(config, section), **{key: value})})
    return config


def _own_settings(stage: str) -> tuple[str, ...]:
    """Config sections that only `stage` and the stages after it read: changing them there remakes that stage's own
    outputs (each stage redoes what is not current), so it needs no `--resume`."""
    sections = ("degrade", "export")
    return sections[sections.index(stage) :] if stage in sections else ()


def claim(args: argparse.Namespace) -> Path | None:
    """The main process takes the build folder (refused while another run uses it) and clears it for
    `--overwrite`; every process stops if that failed. Returns the lock to release (main process only)."""
    root = Path(args.output_dir)
    state = process_state()
    lock, error = None, None
    creates = args.stage in ("generate", "run")
    if state.is_main_process and (creates or root.is_dir()):  # else `prepare_folder` says there is no build
        try:
            lock = claim_folder(root)
            if args.overwrite and (root / "fluxgen_config.json").exists():
                for name in ("images", "scores", "lq", "dataset", "selection.json", "fluxgen_config.json"):
                    target = root / name
                    shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        except (OSError, ValueError) as err:
            error = f"Cannot write to the output folder {root}: {err}" if isinstance(err, OSError) else str(err)
    stop_if_any_failed(error, state)  # other ranks read the folder only after the main one has taken and cleared it
    return lock


def prepare_folder(args: argparse.Namespace, creates: bool) -> FluxGenConfig:
    root = Path(args.output_dir)
    state = process_state()
    stored = FluxGenConfig.load(root) if root.exists() else None
    if stored is None and not creates:
        raise ValueError(f"{root} holds no FluxGen build; run `fluxgen generate -o {root}` (or `fluxgen run`) first.")
    config = resolve_config(args, stored)
    config.validate()
    if stored is not None:
        own = tuple(f"{section}." for section in _own_settings(args.stage))
        differences = [d for d in config_differences(stored, config) if not d.startswith(own)]
        if differences and not args.resume:
            raise ValueError(
                f"{root} was built with different settings: {'; '.join(differences)}. Rerun with --resume to continue "
                "with the new settings, --overwrite to start over, or another --output-dir."
            )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write_test-{os.getpid()}"  # one per process: ranks of a multi-process run probe at once
        probe.write_text("")
        probe.unlink(missing_ok=True)
    except OSError as err:
        raise ValueError(f"Cannot write to the output folder {root}: {err}") from err
    if state.is_main_process:
        config.save(root)
    return config


def run_stage(stage: str, args: argparse.Namespace, config: FluxGenConfig) -> None:
    """Run `stage` on every process of the run (each takes its share; selection and the card are the main process's
    work), then stop every process if any failed, naming it."""
    state = process_state()
    error = None
    start = time.perf_counter()
    try:
        message = _stage_work(stage, args, config, state)
    except (ValueError, OSError) as err:
        from fluxir_hub.cli import describe_os_error

        error, message = (describe_os_error(err) if isinstance(err, OSError) else str(err)), None
    stop_if_any_failed(error, state)
    if message:
        message += f" ({time.perf_counter() - start:.1f} s)"
        print(message if state.num_processes == 1 else f"[process {state.process_index}] {message}")


def _stage_work(stage: str, args: argparse.Namespace, config: FluxGenConfig, state) -> str | None:
    root = Path(args.output_dir)
    # The pool is the configured seed range: images of a larger earlier range stay on disk but are not used.
    seed_range = (config.generate.seed_start, config.generate.seed_end)
    if stage == "generate":
        from .generate import generate_images

        return f"generate: wrote {generate_images(root, config.generate)} image(s)"
    if stage == "score":
        from .score import score_images

        return f"score: scored {score_images(root, config.score, seed_range)} image(s)"
    if stage == "select":
        from .select import select_images

        if not state.is_main_process:  # percentiles over the whole pool: one process, from every process's scores
            return None
        counts = select_images(root, config.select, config.score.metrics, seed_range)["counts"]
        return f"select: kept {counts['kept']}, dropped {counts['dropped']}, unreadable {counts['corrupt']}"
    if stage == "degrade":
        from .degrade_stage import degrade_images

        return f"degrade: wrote {degrade_images(root, config.degrade)} LQ image(s)"
    if stage == "export":
        from .export import export_dataset

        splits = export_dataset(root, config, repo_id=args.repo_id)
        if not state.is_main_process:
            return None
        return f"export: {splits['train']} train / {splits['validation']} validation rows in {BuildLayout(root).dataset_dir}"
    if stage == "push":
        from .push import push_dataset

        if not args.repo_id:
            raise ValueError("push needs --repo-id (e.g. your-org/fluxgen-pairs).")
        if not state.is_main_process:
            return None
        return f"push: {push_dataset(BuildLayout(root).dataset_dir, args.repo_id, private=args.private)}"
    raise ValueError(f"Unknown stage {stage!r}.")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse printed the usage and what is wrong (or --help / --version)
        return stop.code if isinstance(stop.code, int) else 2
    configure_logging(args.verbose)
    lock = None
    try:
        lock = claim(args)
        config = prepare_folder(args, creates=args.stage in ("generate", "run"))
        if args.stage == "run":
            for stage in ("generate", "score", "select", "degrade", "export"):  # every stage on every process
                run_stage(stage, args, config)
            if args.repo_id:
                run_stage("push", args, config)
        elif args.stage == "degrade":
            exported = BuildLayout(args.output_dir).dataset_dir.exists()
            run_stage("degrade", args, config)
            if exported:  # an export of the earlier LQs would be stale: remake it (a no-op when nothing changed)
                run_stage("export", args, config)
        else:
            run_stage(args.stage, args, config)
    except (ValueError, OSError) as err:  # bad input, model lookups, disk full, permissions
        return report_failure("fluxgen", err)
    finally:
        release_folder(lock)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
