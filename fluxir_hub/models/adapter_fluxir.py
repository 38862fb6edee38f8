# Copyright 2026 The FluxIR Hub authors. Licensed under the Apache License, Version 2.0.
"""The FluxIR adapter: one MM-DiT block plus per-block low-rank squeeze-and-excitation layers that steer a
frozen FLUX transformer for image restoration (paper 001, §3.2, Fig. 3, Eq. 1-4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks import ModelHook
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.embeddings import CombinedTimestepGuidanceTextProjEmbeddings, CombinedTimestepTextProjEmbeddings
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_flux import FluxPosEmbed, FluxTransformer2DModel, FluxTransformerBlock
from diffusers.utils import BaseOutput, logging

from .conditioning import (
    TRANSFORMER_GEOMETRY,
    ConditioningMixin,
    ConditioningOptions,
    check_base_geometry,
    install_block_hooks,
    pop_block_kwarg,
    remove_block_hooks,
)

logger = logging.get_logger(__name__)

CONTROL_HOOK_NAME = "fluxir_control"
CONTROL_KWARG = "fluxir_control"  # the `joint_attention_kwargs` entry that carries one call's features

# Base-transformer config keys the adapter must agree with; a mismatch means the adapter was trained for another base.
BASE_GEOMETRY_KEYS = ("patch_size", *TRANSFORMER_GEOMETRY, "guidance_embeds")


@dataclass
class FluxIRAdapterOutput(BaseOutput):
    """
    Output of [`FluxIRAdapter`].

    Args:
        image_features (`torch.Tensor` of shape `(batch_size, image_sequence_length, inner_dim)`):
            `f_z` of paper 001 Eq. 2: the adapter block's image-stream output. The SE layers turn it into one
            residual per base block.
        text_features (`torch.Tensor` of shape `(batch_size, text_sequence_length, inner_dim)`):
            `f_p` of paper 001 Eq. 2: the adapter block's text-stream output.
    """

    # Defaults as every diffusers output has them: accelerate's offload hooks rebuild outputs as `type(out)(dict)`.
    image_features: torch.Tensor | None = None
    text_features: torch.Tensor | None = None


@dataclass
class FluxIRAdapterOptions(ConditioningOptions):
    """What a training run chooses about a new [`FluxIRAdapter`]."""

    rank: int = field(default=32, metadata={"help": "rank r of every SE layer (paper 001 Table 2 picks 32)"})

    def problems(self) -> list[str]:
        return self._positive("rank")


class SqueezeExcitation(nn.Module):
    r"""
    Low-rank squeeze-and-excitation layer of paper 001 Eq. 3: `SE(x) = W_e (W_s x + b_s) + b_e`, with no
    activation between the two projections. The excitation is zero-initialised so a fresh layer outputs zeros.

    Args:
        channels (`int`): Input and output width `c`.
        rank (`int`): Bottleneck width `r`.
    """

    def __init__(self, channels: int, rank: int):
        super().__init__()
        self.squeeze = nn.Linear(channels, rank)
        self.excitation = nn.Linear(rank, channels)
        nn.init.zeros_(self.excitation.weight)
        nn.init.zeros_(self.excitation.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.excitation(self.squeeze(x))


SAMPLING_DEFAULT_KEYS = ("num_inference_steps", "restoration_weight", "color_fix")


def check_sampling_defaults(defaults: dict | None) -> None:
    """Refuse `sampling_defaults` with unknown keys or values the pipeline would refuse."""
    if defaults is None:
        return
    if not isinstance(defaults, dict) or set(defaults) - set(SAMPLING_DEFAULT_KEYS):
        raise ValueError(f"`sampling_defaults` may set {', '.join(SAMPLING_DEFAULT_KEYS)}; got {defaults!r}.")
    steps, weight = defaults.get("num_inference_steps", 1), defaults.get("restoration_weight", 0.0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or not 0 <= weight <= 1:
        raise ValueError(f"`sampling_defaults` holds an invalid steps count or restoration weight: {defaults!r}.")


class FluxIRAdapter(ConditioningMixin, ModelMixin, ConfigMixin, PeftAdapterMixin, AttentionMixin):
    r"""
    The FluxIR restoration adapter for a FLUX.1 transformer ([`~diffusers.FluxTransformer2DModel`]).

    The adapter embeds the noisy latent `z_t` with its own copy of the base `x_embedder` and adds a zero-initialised
    projection `M_i` of the packed low-quality latent `z_lq` (Eq. 1). Learnable offsets `theta_p` and `theta_y` are
    added to the T5 and pooled CLIP embeddings. One double-stream block, initialised from the base's first block,
    gives image features `f_z` and text features `f_p` (Eq. 2). For every block `i` of the base (double and single),
    `SE_z^i(f_z)` is added to that block's image-stream output and `SE_p^i(f_p)` to its text-stream output (Eq. 4);
    see [`~FluxIRAdapter.install`] and [`~FluxIRAdapter.control_kwargs`].

    The config mirrors the base transformer's geometry so a mismatched base is refused with a clear error.

    Args:
        patch_size (`int`, defaults to `1`): Patch size of the base transformer.
        in_channels (`int`, defaults to `64`): Channels of the packed latent (16 VAE channels x 2 x 2).
        num_layers (`int`, defaults to `19`): Double-stream blocks in the base (one SE pair each).
        num_single_layers (`int`, defaults to `38`): Single-stream blocks in the base (one SE pair each).
        attention_head_dim (`int`, defaults to `128`): Head width of the base.
        num_attention_heads (`int`, defaults to `24`): Heads of the base.
        joint_attention_dim (`int`, defaults to `4096`): Width of the T5 embeddings.
        pooled_projection_dim (`int`, defaults to `768`): Width of the pooled CLIP embedding.
        guidance_embeds (`bool`, defaults to `True`): Whether the base embeds a distilled guidance scale.
        axes_dims_rope (`list[int]`, defaults to `[16, 56, 56]`): Rotary embedding split of the base.
        rank (`int`, defaults to `32`): Rank `r` of every SE layer (paper 001 Table 2 picks 32).
        max_sequence_length (`int`, defaults to `512`): Rows of `theta_p`; longer prompts are refused.
        distilled_sigmas (`list[float]`, *optional*):
            The few-step schedule this adapter was distilled for (unshifted noise levels, one per step; see
            [`fluxir_hub.schedules`]). [`FluxIRPipeline`] uses it when no step count is asked for.
        distilled_start_lq_weight (`float`, defaults to 0): With `distilled_sigmas`: the student starts from
            `(1 - w) noise + w LQ latent` (paper 002's LQ-anchored start), as it was distilled.
        task_prompts (`dict[str, str]`, *optional*):
            For an all-in-one adapter (paper 002): the prompt it was trained with for each restoration task, e.g.
            `{"denoise": "noise-free, clean, smooth"}`. [`FluxIRPipeline`] turns `task=` into that prompt. `None`: a
            super-resolution adapter trained on the empty prompt.
        sampling_defaults (`dict`, *optional*):
            The call settings this adapter restores with when the caller leaves them unset: any of
            `num_inference_steps`, `restoration_weight`, `color_fix` (chosen on validation data for this adapter; the
            shipped mini adapter carries them). A task's own settings and a distilled schedule come first.
    """

    training_names = {"fluxir": {}}
    description = "a FluxIR adapter"
    card_text = """# FluxIR adapter for `{{ base_model }}`

A FluxIR restoration adapter ("Acquire and then Adapt: Squeezing out Text-to-Image Model for Image Restoration"):
one MM-DiT block plus low-rank squeeze-and-excitation layers (rank {{ component.rank }}) on the image and text streams
of every FLUX block. It steers the frozen base model to restore real-world degraded photos."""
    module_file = "adapter_fluxir"
    geometry_keys = (*BASE_GEOMETRY_KEYS, "axes_dims_rope")
    options = FluxIRAdapterOptions
    training_stages = ("adapter", "rl", "distill")
    _supports_gradient_checkpointing = True
    _no_split_modules = ["FluxTransformerBlock"]
    _skip_layerwise_casting_patterns = ["pos_embed", "norm"]

    @register_to_config
    def __init__(
        self,
        patch_size: int = 1,
        in_channels: int = 64,
        num_layers: int = 19,
        num_single_layers: int = 38,
        attention_head_dim: int = 128,
        num_attention_heads: int = 24,
        joint_attention_dim: int = 4096,
        pooled_projection_dim: int = 768,
        guidance_embeds: bool = True,
        axes_dims_rope: list[int] = [16, 56, 56],  # noqa: B006 - JSON-plain config default, never mutated
        rank: int = 32,
        max_sequence_length: int = 512,
        distilled_sigmas: list[float] | None = None,
        task_prompts: dict[str, str] | None = None,
        distilled_start_lq_weight: float = 0.0,
        sampling_defaults: dict | None = None,
    ):
        super().__init__()
        check_sampling_defaults(sampling_defaults)
        if rank < 1:
            raise ValueError(f"`rank` must be a positive integer, got {rank}.")
        if distilled_sigmas is not None and (
            not distilled_sigmas
            or any(not 0 < s <= 1 for s in distilled_sigmas)
            or any(a <= b for a, b in zip(distilled_sigmas[:-1], distilled_sigmas[1:], strict=True))
        ):
            raise ValueError(f"`distilled_sigmas` must be decreasing noise levels in (0, 1], got {distilled_sigmas}.")
        if task_prompts is not None and (
            not isinstance(task_prompts, dict) or not all(isinstance(v, str) for v in task_prompts.values())
        ):
            raise ValueError(f"`task_prompts` must map task names to prompt strings, got {task_prompts!r}.")
        self.inner_dim = num_attention_heads * attention_head_dim
        packed_channels = in_channels * patch_size * patch_size

        # Copies of the base embedders (weights copied by `from_transformer`).
        self.pos_embed = FluxPosEmbed(theta=10000, axes_dim=list(axes_dims_rope))
        text_time_guidance_cls = (
            CombinedTimestepGuidanceTextProjEmbeddings if guidance_embeds else CombinedTimestepTextProjEmbeddings
        )
        self.time_text_embed = text_time_guidance_cls(
            embedding_dim=self.inner_dim, pooled_projection_dim=pooled_projection_dim
        )
        self.context_embedder = nn.Linear(joint_attention_dim, self.inner_dim)
        self.x_embedder = nn.Linear(packed_channels, self.inner_dim)

        # M_i of Eq. 1, zero-initialised so the adapter starts from the base's own view of z_t.
        self.lq_embedder = nn.Linear(packed_channels, self.inner_dim)
        nn.init.zeros_(self.lq_embedder.weight)
        nn.init.zeros_(self.lq_embedder.bias)

        # Learnable text offsets theta_p (T5) and theta_y (pooled CLIP), zero at the start.
        self.prompt_offset = nn.Parameter(torch.zeros(max_sequence_length, joint_attention_dim))
        self.pooled_prompt_offset = nn.Parameter(torch.zeros(pooled_projection_dim))

        self.block = FluxTransformerBlock(
            dim=self.inner_dim, num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim
        )

        num_base_blocks = num_layers + num_single_layers
        self.image_se = nn.ModuleList([SqueezeExcitation(self.inner_dim, rank) for _ in range(num_base_blocks)])
        self.text_se = nn.ModuleList([SqueezeExcitation(self.inner_dim, rank) for _ in range(num_base_blocks)])

        self._register_empty_prompt_cache(max_sequence_length, joint_attention_dim, pooled_projection_dim)

        self.gradient_checkpointing = False

    @classmethod
    def from_transformer(
        cls,
        transformer: FluxTransformer2DModel,
        rank: int = 32,
        max_sequence_length: int = 512,
        load_weights_from_transformer: bool = True,
    ) -> FluxIRAdapter:
        r"""
        Build an adapter for `transformer`, copying its embedders and its **first** double-stream block.

        Args:
            transformer ([`~diffusers.FluxTransformer2DModel`]): The base model the adapter will control.
            rank (`int`, *optional*, defaults to `32`): Rank of every SE layer.
            max_sequence_length (`int`, *optional*, defaults to `512`): Length of `theta_p`.
            load_weights_from_transformer (`bool`, *optional*, defaults to `True`):
                Copy the base weights. Turn off when only the architecture is wanted (meta-device counting).
        """
        config = cls.geometry_of(transformer)
        config["axes_dims_rope"] = list(config["axes_dims_rope"])
        adapter = cls(**config, rank=rank, max_sequence_length=max_sequence_length)

        if load_weights_from_transformer:
            adapter.x_embedder.load_state_dict(transformer.x_embedder.state_dict())
            adapter.context_embedder.load_state_dict(transformer.context_embedder.state_dict())
            adapter.time_text_embed.load_state_dict(transformer.time_text_embed.state_dict())
            adapter.block.load_state_dict(transformer.transformer_blocks[0].state_dict())
        return adapter

    # ------------------------------------------------------------------ geometry
    @property
    def num_base_blocks(self) -> int:
        return self.config.num_layers + self.config.num_single_layers

    def freeze_unreachable_parameters(self) -> list[str]:
        """
        Freeze the text-stream SE layer of the base's last block: FLUX drops that block's text output before
        `norm_out`, so the layer can never get a gradient (it stays for the paper's 114-layer count).
        """
        last = self.text_se[self.num_base_blocks - 1]
        last.requires_grad_(False)
        return [f"text_se.{self.num_base_blocks - 1}.{name}" for name, _ in last.named_parameters()]

    def check_compatible(self, transformer: FluxTransformer2DModel) -> None:
        """Raise a `ValueError` naming every setting where `transformer` differs from the base this adapter fits."""
        check_base_geometry(
            self,
            transformer,
            self.geometry_keys,
            "Load the base model the adapter was trained on, or build a new adapter with "
            "`FluxIRAdapter.from_transformer(transformer)`.",
        )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
        img_ids: torch.Tensor,
        txt_ids: torch.Tensor,
        guidance: torch.Tensor | None = None,
        joint_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> FluxIRAdapterOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Compute the control features of one denoising step.

        Args:
            hidden_states (`torch.Tensor` of shape `(batch_size, image_sequence_length, in_channels)`):
                The packed noisy latent `z_t`.
            controlnet_cond (`torch.Tensor` of shape `(batch_size, image_sequence_length, in_channels)`):
                The packed low-quality latent `z_lq` (same packing and size as `hidden_states`).
            encoder_hidden_states (`torch.Tensor` of shape `(batch_size, text_sequence_length, joint_attention_dim)`):
                T5 embeddings `p`; `theta_p` is added to them.
            pooled_projections (`torch.Tensor` of shape `(batch_size, pooled_projection_dim)`):
                Pooled CLIP embedding `y`; `theta_y` is added to it.
            timestep (`torch.Tensor` of shape `(batch_size,)`): Flow time in [0, 1], as the base transformer takes it.
            img_ids (`torch.Tensor` of shape `(image_sequence_length, 3)`): Image RoPE ids.
            txt_ids (`torch.Tensor` of shape `(text_sequence_length, 3)`): Text RoPE ids.
            guidance (`torch.Tensor` of shape `(batch_size,)`, *optional*): Distilled guidance scale.
            joint_attention_kwargs (`dict`, *optional*): Passed to the attention processor.
            return_dict (`bool`, *optional*, defaults to `True`): Return a [`FluxIRAdapterOutput`] or a tuple.

        Returns:
            [`FluxIRAdapterOutput`] or `tuple(image_features, text_features)`.
        """
        text_len = encoder_hidden_states.shape[1]
        if text_len > self.config.max_sequence_length:
            raise ValueError(
                f"The prompt has {text_len} tokens but the adapter's `theta_p` covers {self.config.max_sequence_length}"
                "; use `max_sequence_length` no larger than that."
            )
        # Eq. 1 on embedded tokens: x_embedder(z_t) + M_i(z_lq).
        hidden_states = self.x_embedder(hidden_states) + self.lq_embedder(controlnet_cond)

        timestep = timestep.to(hidden_states.dtype) * 1000
        pooled_projections = pooled_projections + self.pooled_prompt_offset.to(pooled_projections.dtype)
        if self.config.guidance_embeds:
            if guidance is None:
                raise ValueError("This adapter's base embeds guidance: pass `guidance`.")
            guidance = guidance.to(hidden_states.dtype) * 1000
            temb = self.time_text_embed(timestep, guidance, pooled_projections)
        else:
            temb = self.time_text_embed(timestep, pooled_projections)

        encoder_hidden_states = encoder_hidden_states + self.prompt_offset[:text_len].to(encoder_hidden_states.dtype)
        encoder_hidden_states = self.context_embedder(encoder_hidden_states)

        image_rotary_emb = self.pos_embed(torch.cat((txt_ids, img_ids), dim=0))

        if torch.is_grad_enabled() and self.gradient_checkpointing:
            text_features, image_features = self._gradient_checkpointing_func(
                self.block, hidden_states, encoder_hidden_states, temb, image_rotary_emb, joint_attention_kwargs
            )
        else:
            text_features, image_features = self.block(
                hidden_states=hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                temb=temb,
                image_rotary_emb=image_rotary_emb,
                joint_attention_kwargs=joint_attention_kwargs,
            )

        if not return_dict:
            return (image_features, text_features)
        return FluxIRAdapterOutput(image_features=image_features, text_features=text_features)

    # ------------------------------------------------------------------ control injection
    def _install_hooks(self, transformer: FluxTransformer2DModel) -> None:
        r"""
        The control on `transformer` ([`install`] puts it there once): a [`FluxIRControlHook`] on each of its blocks (diffusers' hook
        registry) that adds this adapter's SE residuals to the block's outputs when a call carries features (see
        [`~FluxIRAdapter.control_kwargs`]), and leaves the block exactly as it is otherwise. Nothing is stored per
        call, so concurrent calls cannot interfere; caches (`transformer.enable_cache`), offloading and
        `torch.compile` see one fixed module tree. [`FluxIRPipeline`] installs at construction.
        """
        install_block_hooks(
            transformer,
            CONTROL_HOOK_NAME,
            lambda index: FluxIRControlHook(index, self.image_se[index], self.text_se[index]),
        )

    @staticmethod
    def _remove_hooks(transformer: FluxTransformer2DModel) -> None:
        """Remove the control hooks from `transformer` (whichever adapter installed them)."""
        remove_block_hooks(transformer, CONTROL_HOOK_NAME)

    @staticmethod
    def control_kwargs(
        features: FluxIRAdapterOutput,
        conditioning_scale: float = 1.0,
        joint_attention_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        r"""
        `joint_attention_kwargs` for one controlled call of a transformer the adapter is installed on: the caller's own
        entries plus the features. The hooks take the features out before attention sees them.

        Example:

        ```py
        adapter.install(transformer)  # once
        features = adapter(latents, lq_latents, prompt_embeds, pooled, t, img_ids, txt_ids, guidance)
        velocity = transformer(
            latents, prompt_embeds, pooled, t, img_ids, txt_ids, guidance,
            joint_attention_kwargs=adapter.control_kwargs(features, conditioning_scale=1.0),
        ).sample
        ```
        """
        control = (features.image_features, features.text_features, float(conditioning_scale))
        return {**(joint_attention_kwargs or {}), CONTROL_KWARG: control}

    def prepare_base_call(
        self, base_kwargs: dict[str, Any], lq_latents: torch.Tensor, conditioning_scale: float = 1.0
    ) -> tuple[dict[str, Any], None]:
        """The base call with this adapter's features (see [`ConditioningMixin.prepare_base_call`]); the adapter
        must be installed on the transformer ([`~FluxIRAdapter.install`])."""
        dtype = self.dtype
        features = self(
            hidden_states=base_kwargs["hidden_states"].to(dtype),
            controlnet_cond=lq_latents.to(dtype),
            encoder_hidden_states=base_kwargs["encoder_hidden_states"].to(dtype),
            pooled_projections=base_kwargs["pooled_projections"].to(dtype),
            timestep=base_kwargs["timestep"],
            img_ids=base_kwargs["img_ids"],
            txt_ids=base_kwargs["txt_ids"],
            guidance=base_kwargs["guidance"],
        )
        kwargs = {
            **base_kwargs,
            "joint_attention_kwargs": self.control_kwargs(
                features, conditioning_scale, base_kwargs.get("joint_attention_kwargs")
            ),
        }
        return kwargs, None


class FluxIRControlHook(ModelHook):
    r"""
    Adds `SE_p^i(f_p) * scale` to base block `i`'s text-stream output and `SE_z^i(f_z) * scale` to its image-stream
    output (paper 001 Eq. 4), with `(f_z, f_p, scale)` taken from the call's `joint_attention_kwargs`.

    Stateless: the features arrive with each call, and the hook holds only its block index and that block's two SE
    layers (referenced, not registered: the transformer's parameters and state dict never include them). Installed
    innermost on each block, so a block-skipping cache stores and replays residuals that already include the
    control. Under gradient checkpointing the recomputation receives the same kwargs and adds the same residuals.
    """

    def __init__(self, index: int, image_se: SqueezeExcitation, text_se: SqueezeExcitation):
        super().__init__()
        self.index = index
        self.image_se = image_se
        self.text_se = text_se

    def new_forward(self, module: nn.Module, *args, **kwargs):
        control, args, kwargs = pop_block_kwarg(args, kwargs, CONTROL_KWARG)
        encoder_hidden_states, hidden_states = self.fn_ref.original_forward(*args, **kwargs)
        if control is None:
            return encoder_hidden_states, hidden_states
        image_features, text_features, scale = control
        text_residual = self.text_se(text_features) * scale
        image_residual = self.image_se(image_features) * scale
        return (
            encoder_hidden_states + text_residual.to(encoder_hidden_states.dtype),
            hidden_states + image_residual.to(hidden_states.dtype),
        )
