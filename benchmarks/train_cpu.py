"""Training speed and memory on the CPU for the tiny and mid-size random configs.

    python benchmarks/train_cpu.py [--steps 6]

Each case runs in a fresh process (peak RSS is that case's own): with/without gradient checkpointing and with/without
the pixel loss, batch 2 of 128x128 crops (tiny) or 256x256 (mid).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {"tiny": 128, "tiny-mid": 256}


def measure(model: str, checkpointing: bool, pixel: bool, steps: int) -> dict:
    import resource
    import time

    from fluxir_hub.testing import make_pairs_folder
    from training.config import TrainConfig
    from training.trainer import Trainer

    side = CASES[model]
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_pairs_folder(
            f"{tmp}/pairs", names=("astronaut", "chelsea", "coffee", "rocket"), size=(side, side)
        )
        config = TrainConfig(
            pretrained_model=model, dataset=str(pairs), crop_sizes=[f"{side}x{side}"], max_train_steps=steps + 1,
            train_batch_size=2, rank=32, output_dir=f"{tmp}/out", validation_steps=None, report_to="none",
            checkpointing_steps=10_000, gradient_checkpointing=checkpointing, mixed_precision="no",
            pixel_loss_weight=1.0 if pixel else 0.0, pixel_loss_crop=16,
        )  # fmt: skip
        trainer = Trainer(config)
        times = []
        original = trainer.compute_loss

        def timed(*args, **kwargs):
            times.append(time.perf_counter())
            return original(*args, **kwargs)

        trainer.compute_loss = timed
        trainer.train()
        seconds = times[-1] - times[0]  # steps after the first (warm-up)
    return {
        "samples_per_s": 2 * steps / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="the tiny model, one setting (a smoke run)")
    args = parser.parse_args()
    print("fluxir-train on CPU, batch 2, SE rank 32, fp32")
    cases = {"tiny": CASES["tiny"]} if args.quick else CASES
    for model, side in cases.items():
        for checkpointing in (False,) if args.quick else (False, True):
            for pixel in (True,) if args.quick else (False, True):
                code = (
                    "import json, benchmarks.train_cpu as b; "
                    f"print(json.dumps(b.measure({model!r}, {checkpointing}, {pixel}, {args.steps})))"
                )
                env_out = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
                )
                r = json.loads(env_out.stdout.strip().splitlines()[-1])
                print(f"  {model:8s} {side}px  checkpointing={checkpointing!s:5s} pixel_loss={pixel!s:5s}: "
                      f"{r['samples_per_s']:6.2f} samples/s, peak RAM {r['peak_rss_mb']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
