"""What every conditioning component of [`FluxIRPipeline`] shares: the FluxIR adapter, UMMF and the DRA adapter.

The pipeline has one denoising loop. At each transformer call it asks its conditioning component (the `adapter`
component) for the base call's keyword arguments and for what to do with the output
([`ConditioningMixin.prepare_base_call`]); the sampler, tiling, test-time scaling and caches never know which kind is
loaded. Components also carry the cached empty-prompt embeddings, so the default, prompt-free restoration needs no
text encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

# `_class_name` in a saved config -> what it is, for errors when a folder is loaded as the wrong kind.
CONDITIONING_KINDS = {
    "FluxIRAdapter": "a FluxIR adapter",
    "UMMFConditioner": "UMMF conditioning (LoRA weights in diffusers' format plus a small config)",
    "DRAAdapter": "a DRA restoration adapter (plus its LoRA diffusion adapter)",
}
_LOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


class ConditioningMixin:
    """Shared behaviour of the conditioning components (mixed into diffusers `ModelMixin` classes)."""

    uses_lora: ClassVar[bool] = False  # the component's training also adds a LoRA to the base transformer
    lora_targets: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ loading the right kind
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' `from_pretrained`, after checking that the folder holds this kind of component (a UMMF folder
        given to `FluxIRAdapter`, say, gets an error that names both, not a list of missing weights)."""
        config = cls.load_config(pretrained_model_name_or_path, **{k: kwargs[k] for k in _LOAD_KWARGS if k in kwargs})
        saved = config.get("_class_name")
        if saved and saved != cls.__name__ and saved in CONDITIONING_KINDS:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds {CONDITIONING_KINDS[saved]} ({saved}), not a {cls.__name__}. "
                f"Load it with `pipe.load_conditioning({str(pretrained_model_name_or_path)!r})` or "
                f"`{saved}.from_pretrained(...)`."
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ the base call
    def install(self, transformer) -> None:
        """Put what the component needs on `transformer` (hooks); nothing by default."""

    def prepare_base_call(
        self, base_kwargs: dict[str, Any], lq_latents: torch.Tensor, conditioning_scale: float = 1.0
    ) -> tuple[dict[str, Any], Callable[[torch.Tensor], torch.Tensor] | None]:
        r"""
        The keyword arguments of one conditioned call of the base transformer, and a function applied to its output
        (or `None`).

        Args:
            base_kwargs (`dict`): The plain call: `hidden_states` `(B, N, C)` packed noisy latents,
                `encoder_hidden_states`, `pooled_projections`, `timestep` `(B,)`, `img_ids` `(N, 3)`, `txt_ids`,
                `guidance`, `joint_attention_kwargs`, `return_dict=False`.
            lq_latents (`torch.Tensor` of shape `(B, N, C)`): The packed latent of the (resized) LQ image.
            conditioning_scale (`float`): Strength of the condition.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ empty-prompt cache
    def _register_empty_prompt_cache(self, max_sequence_length: int, joint_dim: int, pooled_dim: int) -> None:
        # Cached empty-prompt embeddings (T5 and pooled CLIP) so the default restoration path needs no text encoder.
        self.register_buffer("empty_prompt_embeds", torch.zeros(max_sequence_length, joint_dim))
        self.register_buffer("empty_pooled_prompt_embeds", torch.zeros(pooled_dim))
        self.register_buffer("empty_prompt_embeds_length", torch.zeros((), dtype=torch.long))

    def _cached_buffer(self, name: str) -> torch.Tensor:
        """A cache buffer, also under sequential CPU offload: accelerate then keeps this module's real buffers in its
        hook's `weights_map` and leaves "meta" tensors on the module until `forward` runs."""
        value = getattr(self, name)
        if value.device.type == "meta":
            hook = getattr(self, "_hf_hook", None)
            for single in getattr(hook, "hooks", (hook,)):  # a SequentialHook holds several
                weights = getattr(single, "weights_map", None)
                if weights is not None and name in weights:
                    return weights[name]
        return value

    @property
    def has_empty_prompt_embeds(self) -> bool:
        return int(self._cached_buffer("empty_prompt_embeds_length")) > 0

    def set_empty_prompt_embeds(self, prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor) -> None:
        r"""
        Store the base text encoders' embeddings of the empty prompt inside the component (saved with it), so the
        default, prompt-free restoration needs no text encoder at run time.

        Args:
            prompt_embeds (`torch.Tensor` of shape `(text_sequence_length, joint_attention_dim)` or with a leading 1).
            pooled_prompt_embeds (`torch.Tensor` of shape `(pooled_projection_dim,)` or with a leading 1).
        """
        prompt_embeds = prompt_embeds.reshape(-1, self.config.joint_attention_dim)
        pooled_prompt_embeds = pooled_prompt_embeds.reshape(self.config.pooled_projection_dim)
        length = prompt_embeds.shape[0]
        if length > self.config.max_sequence_length:
            raise ValueError(
                f"Empty-prompt embeddings have {length} tokens; the adapter holds at most "
                f"{self.config.max_sequence_length}."
            )
        with torch.no_grad():
            self.empty_prompt_embeds.zero_()
            self.empty_prompt_embeds[:length].copy_(prompt_embeds)
            self.empty_pooled_prompt_embeds.copy_(pooled_prompt_embeds)
            self.empty_prompt_embeds_length.fill_(length)

    def get_empty_prompt_embeds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the cached `(prompt_embeds (L, joint_dim), pooled_prompt_embeds (pooled_dim,))`."""
        if not self.has_empty_prompt_embeds:
            raise ValueError(
                "This adapter has no cached empty-prompt embeddings. Load the pipeline with its text encoders, or "
                "call `adapter.set_empty_prompt_embeds(...)` once and save the adapter."
            )
        length = int(self._cached_buffer("empty_prompt_embeds_length"))
        return self._cached_buffer("empty_prompt_embeds")[:length], self._cached_buffer("empty_pooled_prompt_embeds")


def install_block_hooks(transformer, name: str, owner_id: int, make_hook: Callable[[int], Any]) -> None:
    """
    Register `make_hook(index)` as hook `name` on every block of `transformer` (double then single blocks), through
    diffusers' hook registry; nothing happens when the same owner's hooks (`hook.adapter_id == owner_id`) are
    already there, and another owner's are replaced.

    Raises:
        ValueError: a cache is enabled on the transformer (it must be enabled after, to see the controlled blocks).
    """
    from diffusers.hooks import HookRegistry

    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
    current = [HookRegistry.check_if_exists_or_initialize(block).get_hook(name) for block in blocks]
    if all(hook is not None and hook.adapter_id == owner_id for hook in current):
        return
    if getattr(transformer, "is_cache_enabled", False):
        raise ValueError(
            "A cache is enabled on this transformer: install the conditioning first, then enable the cache "
            "(`pipe.transformer.disable_cache()`, build the pipeline, then `pipe.transformer.enable_cache(...)`)."
        )
    for index, block in enumerate(blocks):
        registry = HookRegistry.check_if_exists_or_initialize(block)
        registry.remove_hook(name, recurse=False)
        registry.register_hook(make_hook(index), name)


def pop_block_kwarg(args: tuple, kwargs: dict, key: str) -> tuple[Any, tuple, dict]:
    """
    Take entry `key` out of a FLUX block call's `joint_attention_kwargs` (so attention never sees it) and return
    `(value or None, args, kwargs)` for calling the block. Blocks get those kwargs by keyword, or positionally (5th)
    under gradient checkpointing; the caller's dictionary is never changed.
    """
    positional = "joint_attention_kwargs" not in kwargs and len(args) > 4
    attention_kwargs = args[4] if positional else kwargs.get("joint_attention_kwargs")
    if not attention_kwargs or key not in attention_kwargs:
        return None, args, kwargs
    attention_kwargs = dict(attention_kwargs)
    value = attention_kwargs.pop(key)
    if positional:
        return value, (*args[:4], attention_kwargs, *args[5:]), kwargs
    return value, args, {**kwargs, "joint_attention_kwargs": attention_kwargs}


def check_base_geometry(component, transformer, keys: tuple[str, ...], fix: str) -> None:
    """Raise a `ValueError` naming every setting in `keys` where `transformer` differs from the base `component`
    was built for; `fix` says what to do."""
    mismatches = [
        f"{key}: {type(component).__name__} expects {component.config[key]!r}, transformer has "
        f"{transformer.config.get(key)!r}"
        for key in keys
        if transformer.config.get(key) != component.config[key]
    ]
    if mismatches:
        raise ValueError(
            f"This {type(component).__name__} was built for a different base transformer ({'; '.join(mismatches)}). "
            + fix
        )


def conditioning_class_of(pretrained_model_name_or_path, **kwargs) -> type:
    """The component class a saved folder or Hub repo holds (read from its config's `_class_name`).

    Raises:
        ValueError: it is not a conditioning component.
    """
    from .adapter_dra import DRAAdapter
    from .adapter_fluxir import FluxIRAdapter
    from .conditioning_ummf import UMMFConditioner

    classes = {cls.__name__: cls for cls in (FluxIRAdapter, UMMFConditioner, DRAAdapter)}
    hub = {k: kwargs[k] for k in _LOAD_KWARGS if k in kwargs}
    saved = FluxIRAdapter.load_config(pretrained_model_name_or_path, **hub).get("_class_name")
    if saved not in classes:
        raise ValueError(
            f"{pretrained_model_name_or_path} is not a conditioning component (its config names {saved!r}); "
            f"expected {', '.join(CONDITIONING_KINDS.values())}."
        )
    return classes[saved]


def load_conditioning_component(pretrained_model_name_or_path, **kwargs):
    """Load whichever conditioning component a folder or Hub repo holds (its LoRA, if any, is the pipeline's job:
    [`FluxIRPipeline.load_conditioning`])."""
    return conditioning_class_of(pretrained_model_name_or_path, **kwargs).from_pretrained(
        pretrained_model_name_or_path, **kwargs
    )
