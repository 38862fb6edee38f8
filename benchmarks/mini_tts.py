"""The test-time search (paper 003 §3) on the mini model: greedy vs beam, re-noise vs zero-drift candidates, one
verifier vs a rank ensemble, each against plain sampling on the held-out photos.

    python benchmarks/mini_tts.py --work-dir mini-build

Verifiers are the offline no-reference metrics (PIQE, entropy: the learned ones need downloaded weights). The
settings below were fixed before running; nothing is tuned on the held-out photos. For each setting: the share of
images whose final result beats plain sampling (N = 1, same seed) on each verifier, PSNR / SSIM / PIQE, NFE and
seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

SETTINGS = {
    "plain (N=1)": None,
    "greedy N=4, re-noise, PIQE": {"num_candidates": 4, "perturbation": "renoise", "verifiers": ["piqe"]},
    "greedy N=4, zero-drift, PIQE": {"num_candidates": 4, "perturbation": "zero_drift", "verifiers": ["piqe"]},
    "greedy N=4, zero-drift, rank(PIQE, entropy)": {"num_candidates": 4, "perturbation": "zero_drift",
                                                     "verifiers": ["piqe", "entropy"]},
    "beam N=4 M=2, zero-drift, rank(PIQE, entropy), MSPDE S=2": {
        "num_candidates": 4, "beam_width": 2, "perturbation": "zero_drift", "verifiers": ["piqe", "entropy"],
        "mspde_mode": "partial",
    },
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/tts.json)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from benchmarks._common import ceiling, open_mini_build, report, shipped_pipeline
    from fluxir_hub import TTSConfig
    from fluxir_hub.evaluation.metrics import create_scorers
    from fluxir_hub.tts import metric_verifier

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    pipe = shipped_pipeline(build)
    bench, seed, steps = build.build_bench(), config.seed, config.eval.num_inference_steps
    scorers = create_scorers(["PSNR", "SSIM", "PIQE"])
    judges = {name: metric_verifier(name) for name in ("piqe", "entropy")}  # higher is better, as the search sees

    def tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]

    results, per_image = {}, {}
    for name, settings in SETTINGS.items():
        rows = []
        for lq_path in sorted((bench / "lq").glob("*.png")):
            lq = Image.open(lq_path).convert("RGB")
            hq = Image.open(bench / "hq" / lq_path.name).convert("RGB")
            tts = TTSConfig(**settings) if settings else None
            start = time.perf_counter()
            out = pipe(lq, upscale=hq.width // lq.width, num_inference_steps=steps,
                       generator=torch.Generator().manual_seed(seed), tts=tts)  # fmt: skip
            seconds = time.perf_counter() - start
            a, b = tensor(out.images[0]), tensor(hq)
            with torch.no_grad():
                row = {"PSNR": float(scorers["PSNR"](a, b)), "SSIM": float(scorers["SSIM"](a, b)),
                       "PIQE": float(scorers["PIQE"](a)), "nfe": out.nfe, "seconds": seconds}  # fmt: skip
                row.update({f"judge_{j}": float(f(a, a)) for j, f in judges.items()})
            rows.append(row)
        per_image[name] = rows
        means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        plain = per_image["plain (N=1)"]
        wins = {j: float(np.mean([r[f"judge_{j}"] > p[f"judge_{j}"] for r, p in zip(rows, plain, strict=True)]))
                for j in judges}  # fmt: skip
        results[name] = {**means, "wins": wins, "images": len(rows)}
        print(f"{name}: {results[name]}", flush=True)

    lines = ["| setting | beats N=1 on PIQE | on entropy | PSNR ↑ | SSIM ↑ | PIQE ↓ | NFE | s/image |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        lines.append(
            f"| {name} | {100 * r['wins']['piqe']:.0f} % | {100 * r['wins']['entropy']:.0f} % | {r['PSNR']:.2f} | "
            f"{r['SSIM']:.4f} | {r['PIQE']:.2f} | {r['nfe']:.0f} | {r['seconds']:.2f} |"
        )
    bound = ceiling(pipe.vae, bench, work / "tts-results" / "vae-round-trip")
    lines.append(
        f"| VAE round trip (ceiling) | | | {bound['PSNR']:.2f} | {bound['SSIM']:.4f} | {bound['PIQE']:.2f} | | |"
    )
    results["VAE round trip (ceiling)"] = bound
    table = "\n".join(lines)
    report(table, results, Path(args.output) if args.output else work / "tts.json", per_image=per_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
