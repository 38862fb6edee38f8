"""What the benchmark scripts share: the mini build and its shipped pipeline, restoring and scoring a benchmark folder
(`evaluate`, the VAE's `ceiling`), the README's table, and square HQ photos for the degradation benchmarks."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

HQ_SIDE = 512


def evaluate(pipe, bench: Path, out: Path, kwargs: dict, seed: int) -> dict:
    """Restore every benchmark image and score it against its HQ; returns mean metrics and seconds per image."""
    import numpy as np
    import torch
    from PIL import Image

    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.tts import IQAReward, TTSConfig

    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    call = dict(kwargs)
    candidates = call.pop("tts", None)
    if candidates:
        reward = IQAReward(metrics={"piqe": 1.0, "entropy": 1.0}, pretrained=False)
        call["tts"] = TTSConfig(num_candidates=candidates, reward=reward)
    out.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], []
    for lq_path in sorted((bench / "lq").glob("*.png")):
        lq = Image.open(lq_path).convert("RGB")
        hq = Image.open(bench / "hq" / lq_path.name).convert("RGB")
        start = time.perf_counter()
        if pipe is None:
            restored = lq.resize(hq.size, Image.BICUBIC)
        else:
            restored = pipe(
                lq, upscale=hq.width // lq.width, generator=torch.Generator().manual_seed(seed), **call
            ).images[0]
        seconds.append(time.perf_counter() - start)
        restored.save(out / lq_path.name)
        a, b = (
            torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None] for im in (restored, hq)
        )
        with torch.no_grad():
            rows.append({"PSNR": float(scorers["PSNR"](a, b)), "SSIM": float(scorers["SSIM"](a, b)),
                         "PIQE": float(scorers["PIQE"](a))})  # fmt: skip
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {**means, "seconds_per_image": float(np.mean(seconds)), "images": len(rows)}


def open_mini_build(work_dir: str):
    """The mini build in `work_dir` with its training stages done (kept when done; run if missing)."""
    from training.mini.build import MiniBuild
    from training.mini.config import MiniBuildConfig

    config = MiniBuildConfig.load(work_dir)
    if config is None:
        raise SystemExit(f"No mini build in {work_dir}: run `fluxir-build-mini --work-dir {work_dir}` first.")
    work = Path(work_dir)
    report = json.loads((work / "build_report.json").read_text()) if (work / "build_report.json").exists() else {}
    shipped = report.get("stages", {}).get("ship", {}).get("folder")
    build = MiniBuild(config, work, Path(shipped) if shipped else work / "model")
    build.run(["vae", "base", "fluxgen", "adapter"])
    return build


def work_dir_model(work: Path) -> Path:
    """The model a mini build in `work` shipped (its report's `ship` folder, when it holds weights), else the packaged
    weights: benchmarks given `--work-dir` measure that build's model, not always the packaged one."""
    from fluxir_hub.mini import MINI_DIR, has_mini_weights

    report = work / "build_report.json"
    shipped = (
        json.loads(report.read_text()).get("stages", {}).get("ship", {}).get("folder") if report.exists() else None
    )
    return Path(shipped) if shipped and has_mini_weights(Path(shipped)) else MINI_DIR


def shipped_pipeline(build):
    """The build's shipped pipeline (its stored weights, as users get them), else its base with its adapter;
    progress bars off."""
    from fluxir_hub import FluxIRAdapter, FluxIRPipeline
    from fluxir_hub.mini import has_mini_weights, load_mini_pipeline

    if has_mini_weights(build.output_dir):
        return load_mini_pipeline(build.output_dir, device="cpu")
    pipe = FluxIRPipeline.from_pretrained(build.base_dir, adapter=FluxIRAdapter.from_pretrained(build.adapter_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ceiling(vae, bench: Path, out: Path) -> dict:
    """The VAE's own round trip of each HQ, scored like a method: no restoration through this VAE can beat it."""
    import numpy as np
    import torch
    from PIL import Image

    from fluxir_hub.evaluation.metrics import create_scorers
    from training.mini.gallery import vae_round_trip

    vae_round_trip(vae, bench, out)
    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    rows = []
    for path in sorted((out).glob("*.png")):
        a, b = (
            torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
            for p in (path, bench / "hq" / path.name)
        )
        with torch.no_grad():
            rows.append(
                {name: float(scorer(a, b) if name != "PIQE" else scorer(a)) for name, scorer in scorers.items()}
            )
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {**means, "seconds_per_image": 0.0, "images": len(rows), "note": "encode + decode of the ground truth"}


def markdown_table(results: dict[str, dict], note_header: str) -> str:
    """The README's table of `evaluate` results, one row per method."""
    lines = [f"| method | PSNR ↑ | SSIM ↑ | PIQE ↓ | s/image | {note_header} |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['PIQE']:.2f} | {r['seconds_per_image']:.2f} | {r['note']} |"
        )
    return "\n".join(lines)


def hq_images(n: int) -> list[Image.Image]:
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    images = []
    for i in range(n):
        array = sources[i % len(sources)][..., :3]
        side = min(array.shape[:2])
        images.append(Image.fromarray(np.ascontiguousarray(array[:side, :side])).resize((HQ_SIDE, HQ_SIDE)))
    return images


def validation_bench(work: Path, photos_dir: Path | None, seed: int, count: int = 14) -> Path:
    """Seeded `seesr` x4 crops of 7 training photos of the build's photo set (`work`'s config; the default's when it
    has none), built like the held-out bench."""
    from fluxir_hub.cli.evaluate import main as fluxir_eval
    from training.mini.config import MiniBuildConfig
    from training.mini.photos import check_training_photos, default_photos_dir, load_photo, photo_names

    photo_set = (MiniBuildConfig.load(work) or MiniBuildConfig()).photo_set
    names = sorted(random.Random(seed).sample(photo_names("train", photo_set), 7))
    check_training_photos(names)
    folder = work / "validation-photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (folder / f"{name}.png").exists():
            load_photo(name, photos_dir or default_photos_dir()).save(folder / f"{name}.png")
    bench = work / "bench-validation"
    if not (bench / "lq").is_dir():
        argv = ["build", "div2k-val", "--source", str(folder), "--count", str(count), "--crop", "256", "--scale", "4",
                "--seed", str(seed + 1), "--preset", "seesr", "-o", str(bench)]  # fmt: skip
        if fluxir_eval(argv) != 0:
            raise SystemExit("could not build the validation bench")
    return bench


def report(table: str, results: dict, path: Path, **extra) -> None:
    """Print a benchmark's table and save it with its results (and `extra`, e.g. the arguments) as JSON."""
    print(table)
    path.write_text(json.dumps({"results": results, "table": table, **extra}, indent=1) + "\n")
