"""Full-size FluxIR with random FLUX.1-dev-sized weights: restoration latency, peak memory per offload mode, and one
adapter training step. Each part runs in its own process, so every peak belongs to that part alone.

    python benchmarks/gpu_fullsize.py                                  # every part, FLUX.1-dev geometry, bf16 (H100)
    python benchmarks/gpu_fullsize.py --part eager compile             # some parts
    python benchmarks/gpu_fullsize.py --config tiny --device cpu --size 64 --steps 2   # the same code, anywhere (CI)

Parts: `eager`, `compile` (regional `torch.compile` of the repeated blocks), `offload` (model, group and sequential
CPU offload, fp8 weight storage), `train` (one adapter step at 512 and 1024 px, gradient checkpointing), `tts`
(test-time scaling, N=4), `memory` (weight sizes per component, computed on the meta device: no GPU needed).
Random weights: the numbers measure speed and memory, not quality. The empty-prompt embeddings are cached in the
adapter (as a trained adapter ships them), so no text encoder is loaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

PARTS = ("memory", "eager", "compile", "offload", "tts", "train")
OFFLOAD_MODES = ("model", "group", "sequential", "fp8-storage")

# FLUX.1-dev's VAE (black-forest-labs/FLUX.1-dev, vae/config.json).
FLUX_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
# Parameters of FLUX.1-dev's text encoders (T5-XXL encoder, CLIP-L), for the memory table.
TEXT_ENCODER_PARAMS = {"text_encoder_2 (T5-XXL)": 4_762_310_656, "text_encoder (CLIP-L)": 123_060_480}


def build_pipeline(config: str, device: str, dtype: torch.dtype):
    """A FluxIRPipeline with random weights, initialised directly on `device` in `dtype` (fast on a GPU; a float32
    FLUX.1-dev built on the CPU would need 48 GB and minutes of single-threaded init)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from fluxir_hub import FluxIRAdapter, FluxIRPipeline
    from fluxir_hub.flux_configs import FLUX_DEV_TRANSFORMER_CONFIG, FLUX_SCHEDULER_CONFIG
    from fluxir_hub.tiny import tiny_components

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if config == "tiny":
                components = tiny_components()
                transformer, vae = components["transformer"], components["vae"]
            else:
                transformer = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER_CONFIG)
                vae = AutoencoderKL(**FLUX_VAE_CONFIG)
            adapter = FluxIRAdapter.from_transformer(
                transformer, rank=32, max_sequence_length=32 if config == "tiny" else 512
            )
    finally:
        torch.set_default_dtype(default)
    cfg = transformer.config
    adapter.set_empty_prompt_embeds(
        torch.randn(adapter.config.max_sequence_length, cfg.joint_attention_dim),
        torch.randn(cfg.pooled_projection_dim),
    )
    pipe = FluxIRPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG), vae=vae.to(device, dtype),
        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
        transformer=transformer.to(device, dtype), adapter=adapter.to(device, dtype),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peaks(device: str) -> str:
    if not device.startswith("cuda"):
        import resource

        return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    allocated, reserved = torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
    return f"max_memory_allocated {allocated:.2f} GiB, max_memory_reserved {reserved:.2f} GiB"


def time_restore(pipe, device: str, size: int, steps: int, repeats: int = 2, **extra) -> float:
    from PIL import Image

    lq = Image.new("RGB", (size // 4, size // 4), (100, 120, 140))
    kwargs = {"upscale": 4, "num_inference_steps": steps, **extra}
    pipe(lq, generator=torch.Generator("cpu").manual_seed(0), **kwargs)  # warm-up (and compilation)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        pipe(lq, generator=torch.Generator("cpu").manual_seed(0), **kwargs)
    _sync(device)
    return (time.perf_counter() - start) / repeats


def part_memory(args, dtype) -> None:
    """Weight bytes per component at full size (meta device: exact counts, no memory used)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.flux_configs import FLUX_DEV_TRANSFORMER_CONFIG

    with init_empty_weights():
        transformer = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER_CONFIG)
        vae = AutoencoderKL(**FLUX_VAE_CONFIG)
        adapter = FluxIRAdapter.from_transformer(transformer, rank=32, load_weights_from_transformer=False)
    counts = {
        "transformer": sum(p.numel() for p in transformer.parameters()),
        "adapter (r=32)": sum(p.numel() for p in adapter.parameters()),
        "vae": sum(p.numel() for p in vae.parameters()),
        **TEXT_ENCODER_PARAMS,
    }
    for name, n in counts.items():
        print(f"memory: {name}: {n / 1e9:.3f} B params, {n * 2 / 2**30:.2f} GiB bf16, {n / 2**30:.2f} GiB fp8")
    block = sum(p.numel() for p in transformer.transformer_blocks[0].parameters()) * 2 / 2**30
    print(f"memory: largest transformer block: {block:.2f} GiB bf16")
    print(json.dumps({"params": counts}))


def part_eager(args, dtype) -> None:
    pipe = build_pipeline(args.config, args.device, dtype)
    _reset_peak(args.device)
    seconds = time_restore(pipe, args.device, args.size, args.steps)
    print(f"{args.label}: eager {seconds:.2f} s/image, {seconds / args.steps:.3f} s/step, {_peaks(args.device)}")


def part_compile(args, dtype) -> None:
    pipe = build_pipeline(args.config, args.device, dtype)
    pipe.transformer.compile_repeated_blocks(fullgraph=True)  # regional compilation of the FLUX blocks
    _reset_peak(args.device)
    seconds = time_restore(pipe, args.device, args.size, args.steps)
    print(f"{args.label}: compiled (regional, fullgraph) {seconds:.2f} s/image, {_peaks(args.device)}")


def part_offload(args, dtype) -> None:
    """Each offload mode on a fresh pipeline built on the accelerator, then moved to the CPU (fast init)."""
    failed = []
    for mode in args.offload_modes:
        try:
            _offload_mode(args, dtype, mode)
        except Exception as err:  # one mode's failure must not cost the others' numbers
            print(f"{args.label}: offload {mode}: FAILED ({err.__class__.__name__}: {str(err).splitlines()[0]})")
            failed.append(mode)
    if failed:
        raise SystemExit(f"offload modes failed: {', '.join(failed)}")


def _offload_mode(args, dtype, mode: str) -> None:
    pipe = build_pipeline(args.config, args.device, dtype)
    if mode == "fp8-storage":
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    else:
        pipe.to("cpu")
        if mode == "model":
            pipe.enable_model_cpu_offload(device=args.device)
        elif mode == "group":
            pipe.enable_group_offload(args.device, offload_type="block_level", num_blocks_per_group=1,
                                      use_stream=args.device.startswith("cuda"))  # fmt: skip
        else:
            pipe.enable_sequential_cpu_offload(device=args.device)
    _reset_peak(args.device)
    seconds = time_restore(pipe, args.device, args.size, args.steps, repeats=1)
    print(f"{args.label}: offload {mode}: {seconds:.2f} s/image, {_peaks(args.device)}")


def part_tts(args, dtype) -> None:
    from fluxir_hub.tts import TTSConfig

    pipe = build_pipeline(args.config, args.device, dtype)
    tts = TTSConfig(num_candidates=4, reward=lambda images, lq: -(images - 0.5).abs().mean(dim=(1, 2, 3)))
    _reset_peak(args.device)
    seconds = time_restore(pipe, args.device, args.size, args.steps, repeats=1, tts=tts)
    print(f"{args.label}: test-time scaling N=4 {seconds:.2f} s/image, {_peaks(args.device)}")


def part_train(args, dtype) -> None:
    """Seconds and peak memory of one adapter fwd+bwd+AdamW step (batch 1, gradient checkpointing)."""
    from fluxir_hub.latents import image_ids, text_ids
    from training.model import ControlledTransformer, training_attention_backends

    pipe = build_pipeline(args.config, args.device, dtype)
    transformer, adapter = pipe.transformer, pipe.adapter
    transformer.requires_grad_(False)
    adapter.to(torch.float32).train().requires_grad_(True)
    adapter.freeze_unreachable_parameters()
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
        adapter.enable_gradient_checkpointing()
    model = ControlledTransformer(transformer, adapter)
    optimizer = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=1e-5)
    cfg, length = transformer.config, adapter.config.max_sequence_length
    for size in args.train_sizes or ((512, 1024) if args.config == "full" else (args.size,)):
        side = size // 16
        batch = {
            "latents": torch.randn(1, side * side, 64, device=args.device, dtype=dtype),
            "lq_latents": torch.randn(1, side * side, 64, device=args.device, dtype=dtype),
            "prompt_embeds": torch.randn(1, length, cfg.joint_attention_dim, device=args.device, dtype=dtype),
            "pooled_prompt_embeds": torch.randn(1, cfg.pooled_projection_dim, device=args.device, dtype=dtype),
            "timestep": torch.rand(1, device=args.device),
            "img_ids": image_ids(side, side, device=args.device),
            "txt_ids": text_ids(length, device=args.device),
            "guidance": torch.full((1,), 3.5, device=args.device),
        }

        def step(batch=batch):
            autocast = torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32)
            with training_attention_backends(args.device):
                with autocast:
                    loss = model(**batch).float().square().mean()
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()
        _sync(args.device)
        _reset_peak(args.device)
        start = time.perf_counter()
        step()
        _sync(args.device)
        mode = "checkpointing" if args.gradient_checkpointing else "no checkpointing"
        print(f"training step (batch 1, {size}x{size}, {mode}): {time.perf_counter() - start:.2f} s, "
              f"{_peaks(args.device)}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default=None, help="default: cuda when there is a GPU, else cpu")
    parser.add_argument("--size", type=int, default=1024, help="output side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--offload-modes", nargs="+", choices=OFFLOAD_MODES, default=list(OFFLOAD_MODES))
    parser.add_argument("--train-sizes", nargs="+", type=int, default=None, help="default: 512 1024 (full)")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here; pass --device cpu (the memory part needs none)")
    if len(args.part) > 1:  # one process per part: clean peaks, and a crash or OOM costs one part only
        failed = []
        for part in args.part:
            cmd = [sys.executable, __file__, "--config", args.config, "--device", args.device, "--size",
                   str(args.size), "--steps", str(args.steps), "--part", part,
                   "--offload-modes", *args.offload_modes]  # fmt: skip
            if args.train_sizes:
                cmd += ["--train-sizes", *map(str, args.train_sizes)]
            if not args.gradient_checkpointing:
                cmd.append("--no-gradient-checkpointing")
            if subprocess.run(cmd).returncode != 0:
                failed.append(part)
        if failed:
            print(f"failed parts: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    args.label = f"{args.config} FluxIR, {args.size}x{args.size}, {args.steps} steps, {dtype}"
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}")
    globals()[f"part_{args.part[0]}"](args, dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
