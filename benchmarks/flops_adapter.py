"""Count the FLOPs of one denoising step of full-size FLUX.1-dev, with and without the FluxIR adapter.

Runs on the CPU in seconds: the models are built on the `meta` device (no memory, no weights) and traced under
`torch.utils.flop_counter.FlopCounterMode`, which counts matmuls and attention exactly.

    python benchmarks/flops_adapter.py [--size 1024] [--text-tokens 512] [--rank 32]
"""

from __future__ import annotations

import argparse

import torch
from accelerate import init_empty_weights
from diffusers import FluxTransformer2DModel
from torch.utils.flop_counter import FlopCounterMode

from fluxir_hub import FluxIRAdapter
from fluxir_hub.flux_configs import FLUX_DEV_TRANSFORMER_CONFIG


def count_flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="output side in pixels")
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--rank", type=int, default=32)
    args = parser.parse_args()

    with init_empty_weights():
        transformer = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER_CONFIG)
        adapter = FluxIRAdapter.from_transformer(transformer, rank=args.rank, load_weights_from_transformer=False)

    meta = {"device": "meta"}
    tokens = (args.size // 16) ** 2
    inputs = {
        "hidden_states": torch.empty(1, tokens, 64, **meta),
        "encoder_hidden_states": torch.empty(1, args.text_tokens, 4096, **meta),
        "pooled_projections": torch.empty(1, 768, **meta),
        "timestep": torch.empty(1, **meta),
        "img_ids": torch.empty(tokens, 3, **meta),
        "txt_ids": torch.empty(args.text_tokens, 3, **meta),
        "guidance": torch.empty(1, **meta),
    }
    lq = torch.empty(1, tokens, 64, **meta)

    base = count_flops(lambda: transformer(**inputs))

    adapter.install(transformer)

    def controlled():
        features = adapter(controlnet_cond=lq, **inputs)
        transformer(**inputs, joint_attention_kwargs=adapter.control_kwargs(features))

    total = count_flops(controlled)
    adapter_only = count_flops(lambda: adapter(controlnet_cond=lq, **inputs))
    print(
        f"FLUX.1-dev, {args.size}x{args.size} ({tokens} image + {args.text_tokens} text tokens), SE rank {args.rank}"
    )
    print(f"  base transformer          : {base / 1e12:8.2f} TFLOP/step")
    print(f"  with FluxIR adapter       : {total / 1e12:8.2f} TFLOP/step")
    print(f"    adapter block + embeds  : {adapter_only / 1e12:8.2f} TFLOP/step")
    print(f"    SE layers (114)         : {(total - base - adapter_only) / 1e12:8.2f} TFLOP/step")
    print(f"  adapter overhead          : {100 * (total - base) / base:8.2f} %")
    print(f"  20 steps                  : {20 * total / 1e15:8.2f} PFLOP per image")


if __name__ == "__main__":
    main()
