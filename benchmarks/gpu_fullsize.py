"""Full-size FluxIR on a GPU with random weights: restoration latency (eager, regional torch.compile, CPU offload),
peak VRAM, and one training step of the adapter.

    python benchmarks/gpu_fullsize.py                      # FLUX.1-dev geometry, bf16, 1024x1024, 20 steps (H100)
    python benchmarks/gpu_fullsize.py --config tiny --device cpu --size 64 --steps 2   # the same code path, anywhere

Random weights: the numbers measure speed and memory, not quality. Text encoders are skipped (the empty-prompt
embeddings are cached in the adapter, as a trained adapter ships them).
"""

from __future__ import annotations

import argparse
import time

import torch

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


def build_pipeline(config: str, device: str, dtype: torch.dtype):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from fluxir_hub import FluxIRAdapter, FluxIRPipeline
    from fluxir_hub.testing import FLUX_DEV_TRANSFORMER_CONFIG, FLUX_SCHEDULER_CONFIG, tiny_components

    if config == "tiny":
        components = tiny_components()
        transformer, vae = components["transformer"], components["vae"]
    else:
        # build directly in the target dtype on the target device: a float32 FLUX.1-dev would need 48 GB first
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                transformer = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER_CONFIG)
                vae = AutoencoderKL(**FLUX_VAE_CONFIG)
        finally:
            torch.set_default_dtype(default)
    adapter = FluxIRAdapter.from_transformer(transformer, rank=32, max_sequence_length=512 if config != "tiny" else 32)
    cfg = transformer.config
    adapter.set_empty_prompt_embeds(
        torch.randn(adapter.config.max_sequence_length, cfg.joint_attention_dim),
        torch.randn(cfg.pooled_projection_dim),
    )
    pipe = FluxIRPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG), vae=vae, text_encoder=None, tokenizer=None,
        text_encoder_2=None, tokenizer_2=None, transformer=transformer, adapter=adapter.to(dtype),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_restore(pipe, device: str, size: int, steps: int, repeats: int = 2) -> float:
    from PIL import Image

    lq = Image.new("RGB", (size // 4, size // 4), (100, 120, 140))
    kwargs = {"upscale": 4, "num_inference_steps": steps, "generator": torch.Generator("cpu").manual_seed(0)}
    pipe(lq, **kwargs)  # warm-up (and compilation)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        pipe(lq, **{**kwargs, "generator": torch.Generator("cpu").manual_seed(0)})
    _sync(device)
    return (time.perf_counter() - start) / repeats


def training_step(pipe, device: str, size: int, dtype: torch.dtype) -> tuple[float, float]:
    """Seconds and peak GB of one adapter fwd+bwd+AdamW step at `size` x `size`, gradient checkpointing on."""
    from fluxir_hub.latents import image_ids, text_ids
    from training.model import ControlledTransformer, freeze_unreachable_parameters

    transformer, adapter = pipe.transformer, pipe.adapter
    transformer.requires_grad_(False)
    adapter.to(torch.float32).train().requires_grad_(True)
    freeze_unreachable_parameters(adapter)
    transformer.enable_gradient_checkpointing()
    adapter.enable_gradient_checkpointing()
    model = ControlledTransformer(transformer, adapter)
    optimizer = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=1e-5)
    tokens, length = (size // 16) ** 2, adapter.config.max_sequence_length
    cfg = transformer.config
    batch = {
        "latents": torch.randn(1, tokens, 64, device=device, dtype=dtype),
        "lq_latents": torch.randn(1, tokens, 64, device=device, dtype=dtype),
        "prompt_embeds": torch.randn(1, length, cfg.joint_attention_dim, device=device, dtype=dtype),
        "pooled_prompt_embeds": torch.randn(1, cfg.pooled_projection_dim, device=device, dtype=dtype),
        "timestep": torch.rand(1, device=device),
        "img_ids": image_ids(size // 16, size // 16, device=device),
        "txt_ids": text_ids(length, device=device),
        "guidance": torch.full((1,), 3.5, device=device),
    }

    def step():
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            loss = model(**batch).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024, help="output side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], choices=["compile", "offload", "train"])
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    cuda = args.device.startswith("cuda")
    pipe = build_pipeline(args.config, args.device, dtype).to(args.device)
    label = f"{args.config} FluxIR, {args.size}x{args.size}, {args.steps} steps, {dtype}"
    if cuda:
        print(f"device: {torch.cuda.get_device_name()}")
        torch.cuda.reset_peak_memory_stats()
    eager = time_restore(pipe, args.device, args.size, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(f"{label}: eager {eager:.2f} s/image, {eager / args.steps:.3f} s/step, peak VRAM {peak:.1f} GB")
    if "compile" not in args.skip:
        pipe.transformer.compile_repeated_blocks(fullgraph=False)  # regional compilation of the FLUX blocks
        compiled = time_restore(pipe, args.device, args.size, args.steps)
        print(f"{label}: torch.compile (regional) {compiled:.2f} s/image")
    if "offload" not in args.skip and cuda:
        offload_pipe = build_pipeline(args.config, "cpu", dtype)
        offload_pipe.enable_model_cpu_offload()
        torch.cuda.reset_peak_memory_stats()
        offloaded = time_restore(offload_pipe, args.device, args.size, args.steps, repeats=1)
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"{label}: model CPU offload {offloaded:.2f} s/image, peak VRAM {peak:.1f} GB")
        del offload_pipe
    if "train" not in args.skip:
        for size in (512, 1024) if args.config == "full" else (args.size,):
            seconds, peak = training_step(pipe, args.device, size, dtype)
            print(f"training step (batch 1, {size}x{size}, checkpointing): {seconds:.2f} s, peak VRAM {peak:.1f} GB")


if __name__ == "__main__":
    main()
