"""The restoration adapter of "Diffusion Restoration Adapter" (DRA, paper 004 §3.2), in its DiT form for FLUX.

After every `every`-th base block (4 by default) sits one adapter stage. The first stage takes the packed LQ latent
(through its own linear embedding), each later one the previous stage's output feature. A stage passes its input
through an adapter block, adds the base block's image-stream hidden states (projected to the adapter's width) and a
Linear+SiLU projection of the base's time embedding, runs two more adapter blocks with residuals, and adds the result
to the base's image stream through a zero-initialised linear layer, so training starts from the base model exactly.
It is trained jointly with a LoRA "diffusion adapter" on the base's attention (rank 32), as the paper does.

Departures, stated: our copy of paper 004 describes the UNet variant in text and omits the DiT figure, so where it is
silent the UNet description is followed in token form: an "adapter block" is a pre-norm MLP with a residual (the
UNet's ResNet block without convolutions), working at a reduced width `adapter_dim` (the paper gives 80M parameters
on SD3; `tests/test_conditioning.py::test_full_size_trainable_parameters` counts ours at FLUX.1-dev size).

The stages run inside the base forward through diffusers' hook registry (one [`DRAStageHook`] per base block, doing
nothing unless the call carries the condition). The chain of features is per call: it travels in a dictionary made
for each call inside `joint_attention_kwargs`, so concurrent calls never share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks import ModelHook
from diffusers.models.modeling_utils import ModelMixin

from .conditioning import (
    TRANSFORMER_GEOMETRY,
    ConditioningMixin,
    ConditioningOptions,
    install_block_hooks,
    pop_block_kwarg,
    remove_block_hooks,
)
from .lora import ConditioningLoRA, flux_linear_targets

DRA_HOOK_NAME = "dra_control"
DRA_KWARG = "dra_control"  # the `joint_attention_kwargs` entry that carries one call's condition
DRA_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the base's attention projections (the diffusion adapter)


class DRAAdapterBlock(nn.Module):
    """Pre-norm MLP with a residual: `x + W2 GELU(W1 LN(x))` on `(B, N, dim)` tokens."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mult)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class DRAStage(nn.Module):
    """One adapter stage: `(feature, block hidden states, temb) -> (next feature, residual for the image stream)`."""

    def __init__(self, inner_dim: int, dim: int):
        super().__init__()
        self.entry = DRAAdapterBlock(dim)
        self.hidden_proj = nn.Linear(inner_dim, dim)
        self.time_proj = nn.Sequential(nn.Linear(inner_dim, dim), nn.SiLU())
        self.blocks = nn.ModuleList([DRAAdapterBlock(dim), DRAAdapterBlock(dim)])
        self.out = nn.Linear(dim, inner_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feature: torch.Tensor, hidden: torch.Tensor, temb: torch.Tensor):
        h = self.entry(feature) + self.hidden_proj(hidden) + self.time_proj(temb)[:, None]
        for block in self.blocks:
            h = block(h)
        return h, self.out(h)


@dataclass
class DRAAdapterOptions(ConditioningOptions):
    """What a training run chooses about a new [`DRAAdapter`]."""

    adapter_dim: int = field(default=320, metadata={"help": "width of the adapter stages"})
    lora_rank: int = field(default=32, metadata={"help": "rank of the diffusion adapter's LoRA on the base attention"})

    def problems(self) -> list[str]:
        return self._positive("adapter_dim", "lora_rank")


class DRAAdapter(ConditioningMixin, ModelMixin, ConfigMixin):
    r"""
    DRA's restoration adapter for a FLUX transformer (see the module docstring).

    Args:
        adapter_dim (`int`, defaults to 320): Width of the adapter stages.
        every (`int`, defaults to 4): A stage after every `every`-th base block (double and single blocks counted
            together).
        lora_rank (`int`, defaults to 32): Rank of the LoRA diffusion adapter on the base attention.
        in_channels, num_layers, num_single_layers, attention_head_dim, num_attention_heads, joint_attention_dim,
        pooled_projection_dim: The base transformer's geometry.
        max_sequence_length (`int`, defaults to 512): Rows of the cached empty-prompt embeddings.
        task_prompts, distilled_sigmas: As [`FluxIRAdapter`].
    """

    training_names = {"dra": {}}
    description = "a DRA restoration adapter (with its LoRA diffusion adapter)"
    card_text = """# DRA restoration adapter for `{{ base_model }}`

A restoration adapter after "Diffusion Restoration Adapter" (paper 004 §3.2, DiT form): adapter stages (width
{{ component.adapter_dim }}) after every 4th block of the frozen base, trained jointly with a LoRA diffusion adapter
(rank {{ component.lora_rank }}) on its attention, held in the same weights file."""
    module_file = "adapter_dra"
    geometry_keys = TRANSFORMER_GEOMETRY
    options = DRAAdapterOptions
    lora_targets = DRA_LORA_TARGETS
    gradient_checkpointing_refusal = "its adapter chain runs across the base blocks that checkpointing would recompute"

    @register_to_config
    def __init__(
        self,
        adapter_dim: int = 320,
        every: int = 4,
        lora_rank: int = 32,
        in_channels: int = 64,
        num_layers: int = 19,
        num_single_layers: int = 38,
        attention_head_dim: int = 128,
        num_attention_heads: int = 24,
        joint_attention_dim: int = 4096,
        pooled_projection_dim: int = 768,
        max_sequence_length: int = 512,
        task_prompts: dict[str, str] | None = None,
        distilled_sigmas: list[float] | None = None,
    ):
        super().__init__()
        num_blocks = num_layers + num_single_layers
        if not 1 <= every <= num_blocks:
            raise ValueError(f"`every` must be from 1 to the base's {num_blocks} blocks, got {every}.")
        inner_dim = num_attention_heads * attention_head_dim
        self.lq_embedder = nn.Linear(in_channels, adapter_dim)
        self.stages = nn.ModuleList([DRAStage(inner_dim, adapter_dim) for _ in range(num_blocks // every)])
        geometry = {key: self.config[key] for key in TRANSFORMER_GEOMETRY}
        self.lora = ConditioningLoRA(flux_linear_targets(geometry, DRA_LORA_TARGETS), lora_rank)
        self._register_empty_prompt_cache(max_sequence_length, joint_attention_dim, pooled_projection_dim)

    @classmethod
    def from_transformer(
        cls, transformer, adapter_dim: int = 320, every: int = 4, lora_rank: int = 32, max_sequence_length: int = 512
    ) -> DRAAdapter:
        return cls(
            adapter_dim=adapter_dim,
            every=every,
            lora_rank=lora_rank,
            max_sequence_length=max_sequence_length,
            **cls.geometry_of(transformer),
        )

    def stage_of_block(self, index: int) -> int | None:
        """The stage after base block `index` (0-based, double then single blocks), or None."""
        every = self.config.every
        stage = (index + 1) // every - 1
        return stage if (index + 1) % every == 0 and stage < len(self.stages) else None

    def _install_hooks(self, transformer) -> None:
        """A [`DRAStageHook`] on every base block (the blocks without a stage only strip the condition from the
        attention kwargs), and the LoRA's hooks. As for the FluxIR adapter, enable block caches after installing."""

        def make_hook(index: int) -> DRAStageHook:
            stage = self.stage_of_block(index)
            return DRAStageHook(stage, self.stages[stage] if stage is not None else None)

        install_block_hooks(transformer, DRA_HOOK_NAME, make_hook)
        self.lora.install(transformer)

    @staticmethod
    def _remove_hooks(transformer) -> None:
        """Remove the stage hooks and the LoRA hooks from `transformer` (whichever DRA adapter installed them)."""
        remove_block_hooks(transformer, DRA_HOOK_NAME)
        ConditioningLoRA.uninstall(transformer)

    def prepare_base_call(
        self, base_kwargs: dict[str, Any], lq_latents: torch.Tensor, conditioning_scale: float = 1.0
    ) -> tuple[dict[str, Any], None]:
        """The base call carrying the embedded LQ latent and a fresh feature chain for this call."""
        feature = self.lq_embedder(lq_latents.to(self.dtype))
        condition = {"features": {0: feature}, "scale": float(conditioning_scale)}
        attention_kwargs = {**(base_kwargs.get("joint_attention_kwargs") or {}), DRA_KWARG: condition}
        attention_kwargs = self.lora.call_kwargs(attention_kwargs, conditioning_scale)
        return {**base_kwargs, "joint_attention_kwargs": attention_kwargs}, None


class DRAStageHook(ModelHook):
    """Runs one DRA stage after its base block (or only removes the condition from the kwargs of a block without
    one). Holds the stage by reference, so the transformer's parameters never include it."""

    def __init__(self, stage_index: int | None, stage: DRAStage | None):
        super().__init__()
        self.stage_index = stage_index
        self.stage = stage

    def new_forward(self, module: nn.Module, *args, **kwargs):
        condition, args, kwargs = pop_block_kwarg(args, kwargs, DRA_KWARG)
        encoder_hidden_states, hidden_states = self.fn_ref.original_forward(*args, **kwargs)
        if condition is None or self.stage is None:
            return encoder_hidden_states, hidden_states
        temb = args[2] if len(args) > 2 else kwargs["temb"]
        feature = condition["features"][self.stage_index]
        dtype = feature.dtype  # the component's compute dtype (its weights may be stored in fp8: layerwise casting)
        # Written once per call (a recomputation under checkpointing writes the same value again).
        condition["features"][self.stage_index + 1], residual = self.stage(
            feature, hidden_states.to(dtype), temb.to(dtype)
        )
        return encoder_hidden_states, hidden_states + (condition["scale"] * residual).to(hidden_states.dtype)
