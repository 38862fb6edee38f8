"""`fluxir-restore`: restore image files or folders with FluxIR.

fluxir-restore old_photos/ -o restored/ --adapter your-org/fluxir-adapter
fluxir-restore photo.jpg -o restored/ --tiny          # tiny random model: runs anywhere, output is noise
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fluxir_hub.cli import quiet_optional_backends
from fluxir_hub.files import atomic_save_png

DEFAULT_MODEL = "black-forest-labs/FLUX.1-dev"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxir-restore", description="Restore degraded photos with FLUX.1 and a FluxIR adapter."
    )
    parser.add_argument("inputs", nargs="+", help="image files or folders (folders are read non-recursively)")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the restored PNGs")
    parser.add_argument("--prompt", default="", help="optional text to steer the restoration (default: none)")
    parser.add_argument("--upscale", type=float, default=4.0, help="scale factor, 1 to 8 (default 4)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fidelity", type=float, default=0.05, help="restoration sampling weight w; 0 = off")
    parser.add_argument("--color-fix", default="wavelet", choices=["wavelet", "adain", "none"])
    parser.add_argument("--tile-size", type=int, default=1024, help="tile side in output pixels (default 1024)")
    parser.add_argument("--tile-overlap", type=int, default=256, help="tile overlap in output pixels (default 256)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="base FLUX.1 model id or folder")
    parser.add_argument("--revision", default=None, help="revision of --model")
    parser.add_argument("--adapter", default=None, help="FluxIR adapter id or folder (required unless --tiny)")
    parser.add_argument("--adapter-revision", default=None, help="revision of --adapter")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--cpu-offload", action="store_true", help="offload idle models to the CPU (saves VRAM)")
    parser.add_argument("--tiny", action="store_true", help="use the embedded tiny random pipeline (no GPU, no Hub)")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose output already exists")
    return parser


class SetupError(RuntimeError):
    """The pipeline could not be set up; the message says what to do."""


def load_pipeline(args: argparse.Namespace):
    import torch

    if args.tiny:
        from fluxir_hub.testing import tiny_pipeline

        return tiny_pipeline()

    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from fluxir_hub import FluxIRAdapter, FluxIRPipeline

    if args.adapter is None:
        raise SetupError("--adapter is required: the Hub id or folder of a trained FluxIR adapter (or use --tiny).")
    if not torch.cuda.is_available():
        raise SetupError(
            "No CUDA GPU found. FLUX.1 needs a GPU with at least 24 GB (or --cpu-offload with 16 GB); "
            "use --tiny to try the command without one."
        )
    dtype = getattr(torch, args.dtype)
    try:
        adapter = FluxIRAdapter.from_pretrained(args.adapter, revision=args.adapter_revision, torch_dtype=dtype)
        # With the empty prompt cached in the adapter, no text encoder is loaded at all (T5 alone is 9 GB).
        skip_text = {}
        if not args.prompt and adapter.has_empty_prompt_embeds:
            skip_text = {"text_encoder": None, "tokenizer": None, "text_encoder_2": None, "tokenizer_2": None}
        pipe = FluxIRPipeline.from_pretrained(
            args.model, adapter=adapter, revision=args.revision, torch_dtype=dtype, **skip_text
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = "HF_HUB_OFFLINE is set; " if offline else ""
        raise SetupError(
            f"Could not load the model ({err.__class__.__name__}: {str(err).splitlines()[0]}). {hint}Download it once "
            "with Hub access (accept the FLUX.1-dev licence on its model page first), pass local folders to --model "
            "and --adapter, or use --tiny."
        ) from err
    if args.cpu_offload:
        pipe.enable_model_cpu_offload()
    else:
        pipe.to("cuda")
    pipe.vae.enable_tiling()
    return pipe


def output_names(paths: list[Path]) -> dict[Path, str]:
    """`<stem>.png` per input; inputs sharing a stem (photo.jpg, photo.tif) keep their extension in the name."""
    stems: dict[str, int] = {}
    for path in paths:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    return {
        p: f"{p.stem}.png" if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}.png" for p in paths
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_optional_backends()
    from tqdm.auto import tqdm

    from fluxir_hub.image_io import ImageLoadError, find_images, load_image

    try:
        paths = find_images(args.inputs)
    except FileNotFoundError as err:
        print(f"fluxir-restore: {err}", file=sys.stderr)
        return 2
    if not paths:
        print("fluxir-restore: no images found in the inputs.", file=sys.stderr)
        return 2
    output_dir = Path(args.output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(output_dir, os.W_OK):
            raise PermissionError(f"{output_dir} is not writable")
    except OSError as err:
        print(f"fluxir-restore: cannot write to the output folder: {err}", file=sys.stderr)
        return 2

    targets = output_names(paths)
    todo = [p for p in paths if args.overwrite or not (output_dir / targets[p]).exists()]
    if len(todo) < len(paths):
        print(f"Skipping {len(paths) - len(todo)} image(s) already restored in {output_dir} (use --overwrite).")
    if not todo:
        return 0

    try:
        pipe = load_pipeline(args)
    except SetupError as err:
        print(f"fluxir-restore: {err}", file=sys.stderr)
        return 2
    if args.tiny:
        print("Using the embedded tiny random pipeline: outputs show the pipeline runs, not a real restoration.")

    import torch

    settings = {
        "prompt": args.prompt, "upscale": args.upscale, "num_inference_steps": args.steps, "seed": args.seed,
        "restoration_weight": args.fidelity, "color_fix": args.color_fix, "model": "tiny" if args.tiny else args.model,
        "adapter": "tiny" if args.tiny else args.adapter,
    }  # fmt: skip
    failures: list[tuple[Path, str]] = []
    for path in tqdm(todo, desc="Restoring", unit="image"):
        try:
            image = load_image(path)
            result = pipe(
                image,
                prompt=args.prompt,
                upscale=args.upscale,
                num_inference_steps=args.steps,
                restoration_weight=args.fidelity,
                color_fix=args.color_fix,
                tile_size=args.tile_size,
                tile_overlap=args.tile_overlap,
                generator=torch.Generator("cpu").manual_seed(args.seed),
            ).images[0]
            atomic_save_png(
                output_dir / targets[path], result, {"fluxir": json.dumps({**settings, "source": path.name})}
            )
        except (ImageLoadError, ValueError) as err:
            failures.append((path, str(err)))
    restored = len(todo) - len(failures)
    print(f"Restored {restored} image(s) into {output_dir}.")
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
