"""The shipped mini model beside what users would run instead, on the held-out photos, in one run.

    python benchmarks/mini_yardstick.py                       # fetches the held-out photos once (Debian packages)
    python benchmarks/mini_yardstick.py --work-dir mini-build
    python benchmarks/mini_yardstick.py --photos texture      # the texture-rich held-out set (fur, foliage, stone)

Rows: the mini VAE's own round trip of the ground truth (the ceiling of any restoration through it), bicubic,
Real-ESRGAN x4plus (official weights, ncnn on this CPU; the [baselines] extra) and the shipped mini model with its
defaults, on the same seeded `seesr` x4 crops of photos no stage trained on. Seconds per image are measured here, in
this run, for every row. Restored images go to `<work-dir>/yardstick/<row>/` and a side-by-side sheet to
`<work-dir>/yardstick/sheet.png`, to look at (`yardstick-texture/` with `--photos texture`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks._common import ceiling, evaluate, markdown_table, report, work_dir_model  # noqa: E402


class AsPipeline:
    """A baseline restorer called the way `evaluate` calls a pipeline."""

    def __init__(self, restorer):
        self.restorer = restorer

    def __call__(self, lq, upscale: float, generator=None, **_):
        return SimpleNamespace(images=[self.restorer(lq, outscale=upscale)])


def sheet(bench: Path, folders: dict[str, Path], out: Path, count: int = 4) -> None:
    """Input (bicubic-sized), each row's result and the ground truth, side by side for the first `count` crops."""
    from PIL import Image, ImageDraw

    names = sorted(p.name for p in (bench / "hq").glob("*.png"))[:count]
    columns = {**folders, "ground truth": bench / "hq"}
    with Image.open(bench / "hq" / names[0]) as first:
        side = first.width
    canvas = Image.new("RGB", (side * len(columns), (side + 16) * len(names)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, name in enumerate(names):
        for col, (label, folder) in enumerate(columns.items()):
            with Image.open(folder / name) as image:
                canvas.paste(image.convert("RGB").resize((side, side)), (col * side, row * (side + 16) + 16))
            draw.text((col * side + 4, row * (side + 16) + 2), label, fill="black")
    canvas.save(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="where the bench and results go (reused)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's and ncnn's own)")
    parser.add_argument(
        "--photos",
        choices=["heldout", "texture"],
        default="heldout",
        help="which held-out set: the standard one, or the texture-rich one (fur, feathers, foliage, carved stone)",
    )
    args = parser.parse_args(argv)

    import torch

    from fluxir_hub.evaluation.baselines import RealESRGANNcnn
    from fluxir_hub.mini import load_mini_pipeline
    from training.mini.build import MiniBuild
    from training.mini.config import MiniBuildConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    config = MiniBuildConfig.load(work) or MiniBuildConfig()
    build = MiniBuild(config, work, work / "model")
    build.run(["photos"])
    bench = build.build_bench(split=args.photos)
    pipe = load_mini_pipeline(work_dir_model(work), device="cpu")
    out = work / ("yardstick" if args.photos == "heldout" else f"yardstick-{args.photos}")
    seed, steps = config.seed, config.eval.num_inference_steps
    rows = {
        "mini VAE round trip (ceiling)": ceiling(pipe.vae, bench, out / "vae"),
        "bicubic": {**evaluate(None, bench, out / "bicubic", {}, seed), "note": ""},
        "Real-ESRGAN x4plus (ncnn, CPU)": {
            **evaluate(AsPipeline(RealESRGANNcnn(threads=args.threads)), bench, out / "realesrgan", {}, seed),
            "note": "official weights; what users run instead",
        },
        "mini FluxIR (shipped defaults)": {
            **evaluate(pipe, bench, out / "mini", {}, seed),
            "note": f"the shipped model, its defaults {pipe.adapter.config.sampling_defaults}",
        },
        f"mini FluxIR ({steps} steps, w=0.05, wavelet)": {
            **evaluate(
                pipe,
                bench,
                out / "mini-20",
                {"num_inference_steps": steps, "restoration_weight": 0.05, "color_fix": "wavelet"},
                seed,
            ),  # fmt: skip
            "note": "FLUX.1's settings, the mini default before",
        },
    }
    table = markdown_table(rows, "note")
    report(table, rows, out / "yardstick.json")
    sheet(bench, {"bicubic": out / "bicubic", "Real-ESRGAN": out / "realesrgan", "mini (defaults)": out / "mini",
                  f"mini ({steps} steps)": out / "mini-20"}, out / "sheet.png")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
