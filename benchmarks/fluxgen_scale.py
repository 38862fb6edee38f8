"""FluxGen throughput with 1 and N processes on this machine (the tiny model), and each stage's share.

    python benchmarks/fluxgen_scale.py --images 64 --processes 1 2

Each run is a fresh `fluxgen run --tiny` under `accelerate launch` (CPU ranks), one intra-op thread per process; the
builds are checked to be identical. Prints one line per run: seconds per stage (the slowest process), images/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("generate", "score", "select", "degrade", "export")


def run(out: Path, processes: int, images: int) -> tuple[float, dict[str, float]]:
    args = ["run", "-o", str(out), "--tiny", "--seed-end", str(images), "--batch-size", "4", "--score-batch-size", "8"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    cmd = (launch if processes > 1 else [sys.executable]) + ["-m", "dataset_builder.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    total = time.perf_counter() - start
    seconds = {stage: max(map(float, re.findall(rf"{stage}: [^\n]*?\((\d+\.\d+) s\)", result.stdout)), default=0.0)
               for stage in STAGES}  # fmt: skip
    return total, seconds


def digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("part-"))
    return hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()[:12]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            total, seconds = run(Path(tmp) / f"p{n}", n, args.images)
            stages = ", ".join(f"{s} {seconds[s]:.1f}" for s in STAGES)
            print(f"{n} process(es): {total:.1f} s wall ({args.images / total:.2f} images/s); stages (s): {stages}; "
                  f"build {digest(Path(tmp) / f'p{n}' / 'dataset')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
