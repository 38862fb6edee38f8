"""Choosing the mini model's sampling defaults on validation crops of *training* photos (never the held-out ones).

    python benchmarks/mini_defaults.py --work-dir mini-build
    python benchmarks/mini_defaults.py --adapter "4-step student=students/k4"   # other adapters in the same sweep

Sweeps steps (1, 2, 4, 8, 20), restoration weight (0, 0.05, 0.1, 0.2, 0.3) and colour fix (wavelet, none) with the shipped
adapter on seeded `seesr` x4 crops of 7 training photos (a fixed, seeded choice), and prints each setting's PSNR /
SSIM / PIQE and seconds per image, best first by a simple rank sum over the three metrics. `--adapter NAME=FOLDER`
adds another adapter (a distilled student runs its own schedule; the others the same steps) with the same weights
and colour fixes. Nothing here reads a held-out photo; the held-out numbers of a chosen setting come from `mini_yardstick.py` / `mini_ablation.py`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks._common import evaluate, report, validation_bench, work_dir_model  # noqa: E402

STEPS = (1, 2, 4, 8, 20)
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3)
COLOUR_FIXES = ("wavelet", "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build")
    parser.add_argument("--photos-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS), help="restoration weights to sweep")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=FOLDER", help="another adapter")
    args = parser.parse_args(argv)

    import copy

    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.mini import load_mini_pipeline

    work = Path(args.work_dir)
    bench = validation_bench(work, Path(args.photos_dir) if args.photos_dir else None, args.seed)
    pipe = load_mini_pipeline(work_dir_model(work), device="cpu")
    candidates = {"": (pipe, STEPS)}  # the shipped adapter, unnamed
    for item in args.adapter:
        label, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--adapter {item!r}: give NAME=FOLDER, FOLDER an adapter folder")
        other = copy.copy(pipe)  # the same base, another adapter
        other.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
        own = other.adapter.config.get("distilled_sigmas")
        candidates[f"{label}: "] = (other, (None,) if own else STEPS)  # None: a student's own schedule
    results = {}
    for label, (candidate, step_counts) in candidates.items():
        for steps, weight, fix in itertools.product(step_counts, args.weights, COLOUR_FIXES):
            name = f"{label}{'own schedule' if steps is None else f'{steps} steps'}, w={weight}, {fix}"
            kwargs = {"num_inference_steps": steps, "restoration_weight": weight, "color_fix": fix}
            folder = work / "defaults" / "".join(c if c.isalnum() or c in "-." else "-" for c in name)
            results[name] = {**evaluate(candidate, bench, folder, kwargs, args.seed), **kwargs}
            print(name, {k: round(v, 4) for k, v in results[name].items() if isinstance(v, float)}, flush=True)
    results["bicubic"] = evaluate(None, bench, work / "defaults" / "bicubic", {}, args.seed)

    def ranks(metric: str, reverse: bool) -> dict[str, int]:
        order = sorted((n for n in results if n != "bicubic"), key=lambda n: results[n][metric], reverse=reverse)
        return {n: i for i, n in enumerate(order)}

    psnr, ssim, piqe = ranks("PSNR", True), ranks("SSIM", True), ranks("PIQE", False)
    ordered = sorted((n for n in results if n != "bicubic"), key=lambda n: psnr[n] + ssim[n] + piqe[n])
    lines = ["| setting | PSNR ↑ | SSIM ↑ | PIQE ↓ | s/image |", "|---|---|---|---|---|"]
    for name in ["bicubic", *ordered]:
        r = results[name]
        lines.append(
            f"| {name} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['PIQE']:.2f} | {r['seconds_per_image']:.2f} |"
        )
    report("\n".join(lines), results, work / "defaults.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
