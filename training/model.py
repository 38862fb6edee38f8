"""The trainable module handed to accelerate: the frozen FLUX transformer steered by the FluxIR adapter.

Wrapping both in one module keeps the whole controlled forward inside `forward`, which is what DDP needs to see
every gradient (the SE layers act inside the transformer's blocks).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from diffusers import FluxTransformer2DModel

from fluxir_hub import FluxIRAdapter


class ControlledTransformer(nn.Module):
    def __init__(self, transformer: FluxTransformer2DModel, adapter: FluxIRAdapter):
        super().__init__()
        self.transformer = transformer
        self.adapter = adapter
        adapter.install(transformer)

    def forward(
        self,
        latents: torch.Tensor,
        lq_latents: torch.Tensor,
        prompt_embeds: torch.Tensor,
        pooled_prompt_embeds: torch.Tensor,
        timestep: torch.Tensor,
        img_ids: torch.Tensor,
        txt_ids: torch.Tensor,
        guidance: torch.Tensor | None,
    ) -> torch.Tensor:
        """Velocity `(B, N, 64)` for packed `latents` at flow time `timestep` `(B,)`."""
        return controlled_velocity(
            self.transformer,
            self.adapter,
            latents,
            lq_latents,
            prompt_embeds,
            pooled_prompt_embeds,
            timestep,
            img_ids,
            txt_ids,
            guidance,
        )


def controlled_velocity(
    transformer,
    adapter,
    latents,
    lq_latents,
    prompt_embeds,
    pooled_prompt_embeds,
    timestep,
    img_ids,
    txt_ids,
    guidance,
) -> torch.Tensor:
    """One conditioned call: `adapter` (FluxIR adapter, UMMF or DRA adapter, installed on `transformer`) says how the
    LQ enters the base call, as in the pipeline."""
    base_kwargs = {
        "hidden_states": latents,
        "encoder_hidden_states": prompt_embeds,
        "pooled_projections": pooled_prompt_embeds,
        "timestep": timestep,
        "img_ids": img_ids,
        "txt_ids": txt_ids,
        "guidance": guidance,
        "return_dict": False,
    }
    kwargs, finish = adapter.prepare_base_call(base_kwargs, lq_latents)
    out = transformer(**kwargs)[0]
    return finish(out) if finish is not None else out


def training_attention_backends(device: torch.device | str) -> contextlib.AbstractContextManager:
    """
    The scaled-dot-product attention kernels a training step may use. On CUDA, cuDNN attention is left out: its
    backward failed on an H200 with torch 2.11 + CUDA 13 at FLUX.1-dev size (`mha_graph.execute(...)` not good, an
    illegal memory access without `CUDA_LAUNCH_BLOCKING`), while inference with it ran. Flash, memory-efficient and
    math kernels remain. Elsewhere a no-op.
    """
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
