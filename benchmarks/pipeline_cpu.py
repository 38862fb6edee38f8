"""CPU speed and memory of FluxIRPipeline on the tiny and mid-size random configs, and the cost of test-time scaling.

    python benchmarks/pipeline_cpu.py               # pipeline: s/step and peak RAM; TTS: NFE and time vs N

Each measurement runs in a fresh process so the peak resident memory (ru_maxrss) belongs to that config alone.
The numbers say nothing about FLUX.1-dev quality or GPU speed (see benchmarks/gpu_fullsize.py for that).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {"tiny": {"size": 64, "steps": 8}, "mid": {"size": 256, "steps": 4}}


def measure(config: str, candidates: int) -> dict:
    import resource
    import time

    import torch
    from PIL import Image

    from fluxir_hub.tiny import tiny_pipeline
    from fluxir_hub.tts import TTSConfig

    case = CASES[config]
    pipe = tiny_pipeline(size=config)
    lq = Image.new("RGB", (case["size"] // 2, case["size"] // 2), (120, 90, 60))
    tts = None
    if candidates > 1:
        tts = TTSConfig(num_candidates=candidates, mspde_steps=2, reward=lambda images, lq: images.mean(dim=(1, 2, 3)))
    pipe(lq, upscale=2, num_inference_steps=1, generator=torch.manual_seed(0))  # warm-up
    start = time.perf_counter()
    out = pipe(lq, upscale=2, num_inference_steps=case["steps"], generator=torch.manual_seed(0), tts=tts)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "seconds_per_step": seconds / case["steps"],
        "nfe": out.nfe,
        "expected_nfe": tts.expected_nfe(case["steps"]) if tts else case["steps"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(config: str, candidates: int) -> dict:
    code = f"import json, benchmarks.pipeline_cpu as b; print(json.dumps(b.measure({config!r}, {candidates})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny config only, N = 1 and 2 (a smoke run)")
    args = parser.parse_args()
    cases = {"tiny": CASES["tiny"]} if args.quick else CASES
    counts = (1, 2) if args.quick else (1, 2, 4, 8)
    print("FluxIRPipeline on CPU (random weights), x2 upscale")
    for config, case in cases.items():
        r = run(config, 1)
        print(f"  {config:5s} {case['size']}x{case['size']}, {case['steps']} steps: {r['seconds_per_step']:.3f} s/step, "
              f"peak RAM {r['peak_rss_mb']:.0f} MB")  # fmt: skip
    print("Test-time scaling (branching in the first quarter of the steps, k = 2 MSPDE steps)")
    for config in cases:
        for n in counts:
            r = run(config, n)
            print(f"  {config:5s} N={n}: NFE {r['nfe']:3d} (formula {r['expected_nfe']:3d}), {r['seconds']:.2f} s")


if __name__ == "__main__":
    main()
