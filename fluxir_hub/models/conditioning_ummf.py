"""UMMF conditioning (ResFlow-Tuner, paper 003): the LQ image as extra tokens of the base's own joint attention.

The packed LQ latent is embedded by the base's frozen `x_embedder` together with the noisy latent and appended to
the image sequence (`[text; noisy image; LQ image]` in every block), with the same RoPE position ids as the target
grid (pixel-aligned: token i of the LQ sits where token i of the output does). Its tokens are dropped from the
output. What trains is a LoRA on the attention and MLP projections of every block (rank 16 by default), saved in
the component itself ([`ConditioningLoRA`]: one weights file; a per-call strength, `conditioning_scale`).

`mode="add"` is the ablation the paper compares against: the LQ latent added to the noisy latent before the shared
`x_embedder` (adding the two embeddings, the embedder's bias counted once), same LoRA.

Departure, stated: diffusers' FLUX blocks modulate every image token with the same timestep embedding, so the LQ
tokens are modulated with the noisy tokens' timestep (condition-specific modulation, e.g. at t = 0, would need a
changed block). The paper does not say which it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .conditioning import TRANSFORMER_GEOMETRY, ConditioningMixin, ConditioningOptions
from .lora import ConditioningLoRA, flux_linear_targets, lora_parameter_count  # noqa: F401 (re-exported)

UMMF_MODES = ("sequence", "add")
# Attention and MLP projections of every double block (image and text streams) and single block, as one regex for
# peft (matched against whole module names, so the output layer `proj_out` is not included).
UMMF_LORA_TARGETS = (
    r"(transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
    r"|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2))"
    r"|single_transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v)|proj_mlp|proj_out))"
)


@dataclass
class UMMFOptions(ConditioningOptions):
    """What a training run chooses about a new [`UMMFConditioner`]."""

    lora_rank: int = field(default=16, metadata={"help": "rank of the LoRA on every attention and MLP"})

    def problems(self) -> list[str]:
        return self._positive("lora_rank")


class UMMFConditioner(ConditioningMixin, ModelMixin, ConfigMixin):
    r"""
    The UMMF conditioning component: its LoRA on the base's projections ([`ConditioningLoRA`], applied through hooks
    with this call's `conditioning_scale`) and the cached empty-prompt embeddings.

    Args:
        mode (`str`, defaults to `"sequence"`): `"sequence"` (UMMF: LQ tokens appended to the joint attention) or
            `"add"` (the LQ latent added to the noisy tokens; the paper's ablation).
        lora_rank (`int`, defaults to 16): Rank of the LoRA on every attention and MLP projection.
        in_channels, num_layers, num_single_layers, attention_head_dim, num_attention_heads, joint_attention_dim,
        pooled_projection_dim: The base transformer's geometry (checked when loading).
        max_sequence_length (`int`, defaults to 512): Rows of the cached empty-prompt embeddings.
        task_prompts (`dict[str, str]`, *optional*): As [`FluxIRAdapter`]: the prompt of each task it was trained for.
        distilled_sigmas (`list[float]`, *optional*): As [`FluxIRAdapter`].
    """

    training_names = {"ummf": {"mode": "sequence"}, "ummf-add": {"mode": "add"}}
    description = "UMMF conditioning (a LoRA on the base, LQ tokens in its joint attention)"
    card_text = """# UMMF restoration LoRA for `{{ base_model }}`

UMMF conditioning (ResFlow-Tuner): the low-quality image's latent {% if component.mode == "sequence" %}joins the
base's joint attention as extra tokens at the output's positions{% else %}is added to the noisy tokens (UMMF's
"direct addition" ablation){% endif %}; a LoRA (rank {{ component.lora_rank }}) on every attention and MLP
projection of the frozen base, held in this component's weights file."""
    module_file = "conditioning_ummf"
    geometry_keys = TRANSFORMER_GEOMETRY
    options = UMMFOptions
    lora_targets = UMMF_LORA_TARGETS

    @register_to_config
    def __init__(
        self,
        mode: str = "sequence",
        lora_rank: int = 16,
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
        if mode not in UMMF_MODES:
            raise ValueError(f"`mode` must be one of {UMMF_MODES}, got {mode!r}.")
        if lora_rank < 1:
            raise ValueError(f"`lora_rank` must be a positive integer, got {lora_rank}.")
        geometry = {key: self.config[key] for key in TRANSFORMER_GEOMETRY}
        self.lora = ConditioningLoRA(flux_linear_targets(geometry, UMMF_LORA_TARGETS), lora_rank)
        self._register_empty_prompt_cache(max_sequence_length, joint_attention_dim, pooled_projection_dim)

    @classmethod
    def from_transformer(
        cls, transformer, mode: str = "sequence", lora_rank: int = 16, max_sequence_length: int = 512
    ) -> UMMFConditioner:
        """A conditioner for `transformer`'s geometry."""
        return cls(
            mode=mode,
            lora_rank=lora_rank,
            max_sequence_length=max_sequence_length,
            **cls.geometry_of(transformer),
        )

    def _install_hooks(self, transformer) -> None:
        """Hook the LoRA into `transformer` (see [`ConditioningLoRA`])."""
        self.lora.install(transformer)

    @staticmethod
    def _remove_hooks(transformer) -> None:
        """Remove the LoRA hooks from `transformer` (whichever component installed them)."""
        ConditioningLoRA.uninstall(transformer)

    def prepare_base_call(
        self, base_kwargs: dict[str, Any], lq_latents: torch.Tensor, conditioning_scale: float = 1.0
    ) -> tuple[dict[str, Any], Any]:
        """The base call with the LQ tokens appended (or added); the output keeps the noisy tokens only."""
        latents = base_kwargs["hidden_states"]
        lq = lq_latents.to(latents.dtype)
        kwargs = dict(base_kwargs)
        kwargs["joint_attention_kwargs"] = self.lora.call_kwargs(
            base_kwargs.get("joint_attention_kwargs"), conditioning_scale
        )
        if self.config.mode == "add":
            kwargs["hidden_states"] = latents + lq
            return kwargs, None
        tokens = latents.shape[1]
        kwargs["hidden_states"] = torch.cat([latents, lq], dim=1)
        kwargs["img_ids"] = torch.cat([base_kwargs["img_ids"], base_kwargs["img_ids"]], dim=0)  # shared positions
        return kwargs, lambda out: out[:, :tokens]
