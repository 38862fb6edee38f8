"""Speed of the shipped mini model on this machine's CPU: a 256x256 photo restored to 1024x1024.

    python benchmarks/mini_speed.py                 # 20 steps (the target: at most 30 s on 2 cores), then 4 and 1
    python benchmarks/mini_speed.py --steps 20 --threads 2

The input is a held-out photo resized to 1024 px and degraded with `seesr` x4 to a 256 px LQ. Timings exclude
loading; one warm-up call runs first.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 4, 1])
    parser.add_argument("--size", type=int, default=256, help="input side; the output is 4x")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    from dataset_builder import degrade
    from fluxir_hub.mini import load_mini_pipeline
    from training.mini.photos import load_photo

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_mini_pipeline(device="cpu")
    hq = load_photo("coffee").resize((args.size * 4, args.size * 4))
    lq = degrade(hq, preset="seesr", scale=4, seed=0).lq
    pipe(lq, upscale=4, num_inference_steps=1)  # warm-up
    print(f"mini FluxIR on the CPU ({torch.get_num_threads()} threads): {args.size}x{args.size} -> "
          f"{args.size * 4}x{args.size * 4}")  # fmt: skip
    for steps in args.steps:
        start = time.perf_counter()
        out = pipe(lq, upscale=4, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
        print(f"  {steps:3d} steps: {seconds:6.1f} s/image ({out.nfe} transformer evaluations)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
