"""`fluxir-restore`: restore image files or folders with FluxIR.

fluxir-restore old_photos/ -o restored/ --adapter your-org/fluxir-adapter
fluxir-restore photo.jpg -o restored/ --tiny          # tiny random model: runs anywhere, output is noise
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

from fluxir_hub.cli import add_common_arguments, configure_logging
from fluxir_hub.files import atomic_save_png
from fluxir_hub.tasks import TASKS

DEFAULT_MODEL = "black-forest-labs/FLUX.1-dev"
MAX_UPSCALE = 8  # the pipeline's own limit (checked again there)
MAX_STEPS = 1000
MIN_TILE = 64  # the smallest tile any model accepts (4x FLUX's 16 px output multiple); the pipeline checks the rest
OFFLOAD_MODES = ("none", "model", "group", "sequential")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxir-restore", description="Restore degraded photos with FLUX.1 and a FluxIR adapter."
    )
    parser.add_argument("inputs", nargs="+", help="image files or folders (folders are read non-recursively)")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the restored PNGs")
    parser.add_argument("--prompt", default="", help="optional text to steer the restoration (default: none)")
    parser.add_argument(
        "--task",
        choices=list(TASKS),
        default=None,
        help="restoration task, for an all-in-one adapter (sets its task prompt; default: super-resolution)",
    )
    parser.add_argument(
        "--upscale",
        type=_number(float, 1, MAX_UPSCALE),
        default=None,
        help=f"scale factor, 1 to {MAX_UPSCALE} (default 4; 1 for tasks other than sr)",
    )
    parser.add_argument(
        "--steps",
        type=_number(int, 1, MAX_STEPS),
        default=None,
        help=f"denoising steps, 1 to {MAX_STEPS} (default: a distilled adapter's own schedule, else the adapter's "
        "default: 1 for the mini model, 20 for FLUX.1)",
    )
    parser.add_argument("--seed", type=_number(int, 0, 2**63 - 1), default=0, help="random seed (default 0)")
    parser.add_argument(
        "--restoration-weight",
        "--fidelity",
        dest="restoration_weight",
        type=_number(float, 0, 1),
        default=None,
        help="the pipeline's `restoration_weight` (the fidelity knob w) in [0, 1]; 0 = off (default: the adapter's, 0.1 for the mini model, else "
        "0.05; 0 for low_light, underwater, desnow)",
    )
    parser.add_argument(
        "--color-fix",
        default=None,
        choices=["wavelet", "adain", "none"],
        help="(default wavelet; none for low_light, underwater, desnow, whose LQ colours are wrong)",
    )
    parser.add_argument(
        "--tile-size",
        type=_tile_size,
        default="auto",
        help="latent tile side in output pixels, 'none' for one pass, or 'auto' (default): tiles only when one pass "
        "would not fit in memory",
    )
    parser.add_argument(
        "--tile-overlap", type=_number(int, 0, None), default=None, help="tile overlap in output pixels (a quarter)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"base FLUX.1 model id or folder for --adapter (default {DEFAULT_MODEL}), or a whole FluxIRPipeline "
        "folder (adapter included)",
    )
    parser.add_argument("--revision", default=None, help="revision of --model")
    parser.add_argument(
        "--adapter",
        default=None,
        help="trained conditioning (FluxIR adapter, UMMF, DRA) id or folder for the --model base; without it the "
        "embedded mini model runs",
    )
    parser.add_argument("--adapter-revision", default=None, help="revision of --adapter")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["bfloat16", "float16", "float32"],
        help="weights' dtype for --adapter (default bfloat16 on a GPU, float32 on a CPU, where half precision is "
        "about 100x slower)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow Python files in --model/--adapter that this package did not write to run (read them first)",
    )
    parser.add_argument(
        "--offload",
        choices=OFFLOAD_MODES,
        default="none",
        help="keep weights on the CPU and move them to the GPU when needed: model (peak ~24 GiB for FLUX.1-dev), "
        "group (block by block with CUDA streams, ~5 GiB), sequential (layer by layer, slowest); see the README",
    )
    parser.add_argument(
        "--fp8-storage", action="store_true", help="store the transformer's weights in fp8 (~11 GiB), compute in bf16"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny *random* pipeline used by the tests (noise out)")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose output already exists")
    add_common_arguments(parser)
    return parser


def _number(kind: type, low: float, high: float | None):
    """An argparse type: a `kind` number in [low, high], refused while parsing, before any model is loaded."""

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
        if not math.isfinite(number) or number < low or (high is not None and number > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return number

    return parse


def _tile_size(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, 'auto' or 'none', got {value!r}") from None
    if size < MIN_TILE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_TILE} pixels, 'auto' or 'none', got {value}")
    return size


class SetupError(RuntimeError):
    """The pipeline could not be set up; the message says what to do."""


def _is_pipeline_folder(path: str | None) -> bool:
    """A saved FluxIRPipeline (every component, the adapter included), rather than a base model or Hub id."""
    index = Path(path) / "model_index.json" if path else None
    if not (index and index.is_file()):
        return False
    try:
        return "adapter" in json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SetupError(f"{index} is not valid JSON ({err}); restore or re-save that folder.") from None


def _looks_like_a_path(name: str) -> bool:
    """Hub ids are `org/name` (or a bare name); anything else that does not exist is a missing local folder."""
    return (
        Path(name).is_absolute()
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or os.sep != "/"
        and os.sep in name
    )


def _weights_bytes(folder: str) -> int:
    """Bytes of the weights in a local model folder (0 for a Hub id, whose size is not known offline)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) if Path(folder).is_dir() else 0


def _check_fits_on_cpu(args: argparse.Namespace) -> None:
    """On a CPU, refuse a base whose weights (in float32, the CPU's compute dtype) cannot fit in memory."""
    if args.model == DEFAULT_MODEL:
        raise SetupError(
            f"No CUDA GPU found, and {DEFAULT_MODEL} (12B parameters, ~48 GB in float32) cannot run on this CPU. "
            "Run on a GPU, pass a smaller base folder to --model (e.g. the one your adapter was trained on), or leave "
            "out --adapter for the embedded mini model."
        )
    needed = _weights_bytes(args.model) * 2  # bf16/fp16 files grow to float32 on the CPU
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    if available and needed > 0.8 * available:
        raise SetupError(
            f"No CUDA GPU found, and --model {args.model} needs ~{needed / 2**30:.0f} GiB in float32, more than this "
            f"machine's {available / 2**30:.0f} GiB. Run it on a GPU."
        )


def _loading_error(err: Exception, what: str, local: bool = False) -> SetupError:
    """One line for a model that failed to load: which file, and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from fluxir_hub.cli import describe_os_error

    first = (str(err).splitlines() or [""])[0].strip()
    if local:  # a damaged or incomplete file of the user's own folder: the message names it
        return SetupError(f"could not load {what}: {first} Re-save or copy that folder again.")
    if isinstance(err, (LocalEntryNotFoundError, HfHubHTTPError)) or (isinstance(err, OSError) and err.errno is None):
        return SetupError(describe_os_error(err) if isinstance(err, OSError) else f"could not load {what}: {first}")
    return SetupError(f"could not load {what}: {first}")


def _notice_gpu_only_options(args: argparse.Namespace, target: str) -> None:
    ignored = [
        flag for flag, used in (("--offload", args.offload != "none"), ("--fp8-storage", args.fp8_storage)) if used
    ]
    if ignored:
        print(f"Note: {' and '.join(ignored)} only apply to a base model on a GPU; {target} runs without them.")


def load_pipeline(args: argparse.Namespace):
    """
    `(pipeline, description)` for the command line: the tiny random stack (`--tiny`), a whole FluxIRPipeline folder
    (`--model folder`), FLUX.1 with a trained adapter (`--adapter`, on a GPU), or else the embedded mini model.
    """
    import torch

    if args.tiny:
        from fluxir_hub.tiny import tiny_pipeline

        return tiny_pipeline(), "the tiny random test pipeline (its outputs are noise)"

    from fluxir_hub.mini import MINI_DESCRIPTION, load_mini_pipeline

    consent = {"trust_remote_code": True} if args.trust_remote_code else {}
    if args.adapter is None:
        if args.model is None:
            _notice_gpu_only_options(args, "the embedded mini model")
            try:  # another task than super-resolution: the all-in-one adapter shipped beside the SR one
                return load_mini_pipeline(task=args.task), MINI_DESCRIPTION
            except FileNotFoundError as err:
                raise SetupError(str(err)) from err
        if _is_pipeline_folder(args.model):
            _notice_gpu_only_options(args, "a whole pipeline folder")
            try:
                return load_mini_pipeline(args.model, **consent), f"the FluxIRPipeline in {args.model}"
            except Exception as err:  # a damaged file or foreign code: one line naming it
                raise _loading_error(err, f"the pipeline in {args.model}", local=True) from err
        if not Path(args.model).exists() and _looks_like_a_path(args.model):
            raise SetupError(f"--model {args.model}: no such folder.")
        raise SetupError(
            f"--model {args.model} is a base model: give the conditioning to use with --adapter, or pass a whole "
            "FluxIRPipeline folder to --model, or leave both out for the embedded mini model."
        )
    args.model = args.model or DEFAULT_MODEL
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        _check_fits_on_cpu(args)
        _notice_gpu_only_options(args, "a model on the CPU")
        if args.dtype not in (None, "float32"):
            print(f"Note: computing in float32 on the CPU (--dtype {args.dtype} is about 100x slower there).")
        args.dtype = "float32"
    from fluxir_hub.pipelines import load_restoration_pipeline

    dtype = getattr(torch, args.dtype or "bfloat16")
    try:
        # with the prompt cached in the component (the empty one, a task's), no text encoder is loaded (T5: 9 GB)
        pipe = load_restoration_pipeline(
            args.model,
            args.adapter,
            prompt=args.prompt,
            task=args.task,
            base_revision=args.revision,
            adapter_revision=args.adapter_revision,
            dtype=dtype,
            **consent,
        )
    except Exception as err:  # missing, damaged, foreign code, another base, no such task: one line
        raise _loading_error(err, f"{args.model} with {args.adapter}") from err
    if device == "cpu":
        pipe.to("cpu")
        return pipe, f"{args.model} with the conditioning {args.adapter}, on the CPU"
    if args.fp8_storage:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if args.offload == "model":
        pipe.enable_model_cpu_offload()
    elif args.offload == "group":
        pipe.enable_group_offload("cuda", offload_type="block_level", num_blocks_per_group=1, use_stream=True)
    elif args.offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to("cuda")
    pipe.vae.enable_tiling()
    return pipe, f"FLUX.1 ({args.model}) with the FluxIR adapter {args.adapter}"


OUTPUT_TAG = "fluxir"  # PNG text chunk with the settings and the source of a restored image


def recorded_tag(path: Path) -> dict | None:
    """The settings and source recorded in a PNG written by this command, or None for any other file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            tag = getattr(image, "text", {}).get(OUTPUT_TAG)
        record = json.loads(tag) if tag else None
        return record if isinstance(record, dict) else None
    except Exception:  # unreadable or foreign files are simply not ours
        return None


def recorded_source(path: Path) -> str | None:
    """The source recorded in a PNG written by this command, or None for any other file."""
    return (recorded_tag(path) or {}).get("source")


def file_digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _same_source(recorded: str | None, path: Path) -> bool:
    # Outputs record the resolved input path; older ones recorded only the file name.
    return recorded is not None and recorded in (str(path.resolve()), path.name)


def made_from(output: Path, path: Path, digest: str, settings: dict | None = None) -> bool:
    """Whether `output` is this command's restoration of `path` with its current bytes (older outputs recorded no
    digest: the same path counts) and, when given, with these sampling `settings` (a rerun with another seed, step
    count, prompt, ... restores again instead of keeping the old result)."""
    record = recorded_tag(output) if output.is_file() else None
    if not record or not _same_source(record.get("source"), path) or record.get("sha256", digest) != digest:
        return False
    return settings is None or all(record.get(key, value) == value for key, value in settings.items())


def output_names(paths: list[Path], output_dir: Path | None = None) -> dict[Path, str]:
    """
    A distinct output file name per input, never an input's own file and never an output of another input.

    An input already restored into `output_dir` (a PNG recording its path) keeps that output's name, whatever the
    other inputs of this run. Otherwise `<stem>.png` when the stem is unique among the inputs; else
    `<stem>_<ext>.png`, then `_2`, `_3`, ... until free. Names are compared case-insensitively (macOS, Windows). In
    `output_dir`, a name already holding another input's restoration (or any file this command did not write) is not
    reused.
    """
    inputs = {p.resolve() for p in paths}
    taken: set[str] = set()
    names: dict[Path, str] = {}
    if output_dir is not None and output_dir.is_dir():
        taken |= {p.name.lower() for p in output_dir.iterdir() if p.resolve() in inputs}
        by_source = {}
        for existing in sorted(output_dir.glob("*.png")):
            source = recorded_source(existing)
            if source is not None:
                by_source.setdefault(source, existing.name)
        for path in paths:
            name = by_source.get(str(path.resolve()))
            if name is not None and name.lower() not in taken:
                names[path] = name
                taken.add(name.lower())

    def free(name: str, path: Path) -> bool:
        if name.lower() in taken:
            return False
        existing = output_dir / name if output_dir is not None else None
        return existing is None or not existing.exists() or _same_source(recorded_source(existing), path)

    stems = Counter(p.stem.lower() for p in paths)
    rest = [p for p in paths if p not in names]
    for path in sorted(rest, key=lambda p: stems[p.stem.lower()] > 1):  # unique stems claim their plain name first
        base = path.stem if stems[path.stem.lower()] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        name, n = f"{base}.png", 2
        while not free(name, path):
            name, n = f"{base}_{n}.png", n + 1
        names[path] = name
        taken.add(name.lower())
    return names


def check_output_dir(output_dir: Path, inputs: list[str]) -> None:
    """Refuse an output folder that is also an input folder: a rerun would read its own outputs as inputs."""
    resolved = output_dir.resolve()
    for item in inputs:
        if Path(item).is_dir() and Path(item).resolve() == resolved:
            raise SetupError(
                f"The output folder {output_dir} is also an input folder: restored images would be read as inputs "
                f"on the next run. Choose another -o, e.g. {Path(item) / 'restored'}."
            )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if isinstance(args.tile_size, int) and args.tile_overlap is not None and args.tile_overlap >= args.tile_size:
        parser.error(f"--tile-overlap ({args.tile_overlap}) must be smaller than --tile-size ({args.tile_size})")
    configure_logging(args.verbose)
    from tqdm.auto import tqdm

    from fluxir_hub.image_io import ImageLoadError, find_images, load_image

    output_dir = Path(args.output_dir)
    try:
        found = find_images(args.inputs)
        check_output_dir(output_dir, args.inputs)
    except (FileNotFoundError, ImageLoadError, SetupError) as err:
        print(f"fluxir-restore: {err}", file=sys.stderr)
        return 2
    if found.skipped:
        print(f"Skipped {len(found.skipped)} file(s) in the input folders: {found.skipped_summary()}.")
    # Our own earlier outputs (found through an explicit path or glob) are not restored again.
    paths = [p for p in found.paths if recorded_source(p) is None]
    if len(paths) < len(found.paths):
        print(f"Skipped {len(found.paths) - len(paths)} input(s) that are fluxir-restore outputs themselves.")
    if not paths:
        print("fluxir-restore: no images found in the inputs.", file=sys.stderr)
        return 2
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(output_dir, os.W_OK):
            raise PermissionError(f"{output_dir} is not writable")
    except OSError as err:
        print(f"fluxir-restore: cannot write to the output folder: {err}", file=sys.stderr)
        return 2

    targets = output_names(paths, output_dir)
    digests = {p: file_digest(p) for p in paths}
    settings = {
        "prompt": args.prompt,
        "task": args.task,
        "upscale": args.upscale,
        "num_inference_steps": args.steps,
        "seed": args.seed,
        "restoration_weight": args.restoration_weight,
        "color_fix": args.color_fix,
    }
    if args.upscale is None:  # the task's default, resolved with the model: the same for the same task
        del settings["upscale"]
    todo = [p for p in paths if args.overwrite or not made_from(output_dir / targets[p], p, digests[p], settings)]
    if len(todo) < len(paths):
        print(
            f"Skipping {len(paths) - len(todo)} image(s) already restored in {output_dir} with these settings "
            "(use --overwrite)."
        )
    if not todo:
        return 0

    try:
        pipe, description = load_pipeline(args)
    except SetupError as err:
        print(f"fluxir-restore: {err}", file=sys.stderr)
        return 2
    print(f"Restoring with {description}.")
    try:
        _, args.upscale = pipe.task_prompt(args.task, args.prompt, args.upscale)  # a task the model lacks: say so now
    except ValueError as err:
        print(f"fluxir-restore: {err}", file=sys.stderr)
        return 2

    import torch

    settings = {**settings, "upscale": args.upscale, "model": description}
    failures: list[tuple[Path, str]] = []
    written = 0
    for path in tqdm(todo, desc="Restoring", unit="image"):
        try:
            image = load_image(path)
            result = pipe(
                image,
                prompt=args.prompt,
                task=args.task,
                upscale=args.upscale,
                num_inference_steps=args.steps,
                restoration_weight=args.restoration_weight,
                color_fix=args.color_fix,
                tile_size=args.tile_size,
                tile_overlap=args.tile_overlap,
                generator=torch.Generator("cpu").manual_seed(args.seed),
            ).images[0]
        except (ImageLoadError, ValueError) as err:
            failures.append((path, str(err)))
            continue
        except RuntimeError as err:  # e.g. out of memory: the next (smaller) image may still work
            failures.append((path, f"{err.__class__.__name__}: {str(err).splitlines()[0]} (try --tile-size 512)"))
            continue
        try:
            atomic_save_png(
                output_dir / targets[path],
                result,
                {OUTPUT_TAG: json.dumps({**settings, "source": str(path.resolve()), "sha256": digests[path]})},
            )
            written += 1
        except OSError as err:  # disk full or folder gone: every later write would fail too
            print(
                f"fluxir-restore: could not write {output_dir / targets[path]}: {err.strerror or err}. No partial file "
                f"was left. {written} image(s) were restored before this; free space and rerun the same command to "
                "continue (finished images are skipped).",
                file=sys.stderr,
            )
            return 1
    print(f"Restored {written} image(s) into {output_dir}.")
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
