"""What every conditioning component of [`FluxIRPipeline`] shares: the FluxIR adapter, UMMF and the DRA adapter.

The pipeline has one denoising loop. At each transformer call it asks its conditioning component (the `adapter`
component) for the base call's keyword arguments and for what to do with the output
([`ConditioningMixin.prepare_base_call`]); the sampler, tiling, test-time scaling and caches never know which kind is
loaded. Components also carry the cached empty-prompt embeddings, so the default, prompt-free restoration needs no
text encoder.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

# The base transformer's config values a component's weights depend on (a mismatch means it was made for another base).
TRANSFORMER_GEOMETRY = ("in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
                        "joint_attention_dim", "pooled_projection_dim")  # fmt: skip
_LOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")
LEGACY_LORA_NAME = "pytorch_lora_weights.safetensors"  # UMMF/DRA folders written before components held their LoRA
_CLASSES: dict[str, type] = {}  # `_class_name` -> class, filled as each conditioning class is defined
_NAMES: dict[str, tuple[type, dict[str, Any]]] = {}  # training name -> (class, fixed `from_transformer` options)
_OWNER = "_fluxir_conditioning_owner"  # transformer attribute: a weak reference to the component whose hooks it has


@dataclass
class ConditioningOptions:
    """
    The settings a kind's `from_transformer` takes besides the base, the text length and its registered name's fixed
    options: what `fluxir-train --conditioning_options "{name: value}"` sets. A kind subclasses it as a dataclass, one
    field per option with its default and a `help` entry in the field's metadata, and names it as its `options`.
    """

    def problems(self) -> list[str]:
        """The values' own problems, one message each (the trainer reports them before loading any model)."""
        return []

    def _positive(self, *names: str) -> list[str]:
        return [f"`{n}` must be a positive integer, got {getattr(self, n)}." for n in names if getattr(self, n) < 1]


def register_conditioning(cls: type) -> type:
    """Make `cls` known to the loader, the trainer (`--conditioning`) and the Space under each of its
    `training_names`. Done for every subclass of [`ConditioningMixin`] that declares `training_names`."""
    for name in cls.training_names:
        owner = _NAMES.get(name, (cls, {}))[0]
        if owner.__qualname__ != cls.__qualname__ or owner.__module__ != cls.__module__:
            raise ValueError(f"The conditioning name {name!r} is taken by {owner.__name__}.")
    _CLASSES[cls.__name__] = cls
    _NAMES.update({name: (cls, dict(options)) for name, options in cls.training_names.items()})
    return cls


def conditioning_classes() -> dict[str, type]:
    """Every registered conditioning class by class name. The built-in ones are registered by `fluxir_hub.models`,
    which Python imports in full before this module (its parent package)."""
    return dict(_CLASSES)


def conditioning_names() -> dict[str, tuple[type, dict[str, Any]]]:
    """Training name (`fluxir-train --conditioning`) -> (class, fixed `from_transformer` options)."""
    conditioning_classes()
    return dict(_NAMES)


class ConditioningMixin:
    """
    The contract of a conditioning component (mixed into diffusers `ModelMixin` classes): how the LQ image enters a
    call of the frozen base, and everything the loader, trainer and Space need to know about the kind.

    A subclass declares:

    - `training_names`: `{name: fixed from_transformer options}` under which `fluxir-train --conditioning` builds it
      (registering the class; e.g. UMMF's `{"ummf": {"mode": "sequence"}, "ummf-add": {"mode": "add"}}`);
    - `description`: what it is, for messages; `card_text`: the model card's title and first paragraph (Jinja,
      rendered with `component`, the saved component's config, and `base_model`); `module_file`: the import-only module file a saved folder
      carries (`fluxir_hub.hub_code`), so `AutoModel`/`DiffusionPipeline` with `trust_remote_code=True` find it;
    - `geometry_keys`: the base transformer config values it must match ([`check_compatible`]);
    - `options`: its [`ConditioningOptions`] dataclass (e.g. the rank), the `from_transformer` settings a training run
      chooses; `training_stages`, the `--stage` values it supports; `lora_targets`, when it holds a LoRA of the base
      ([`ConditioningLoRA`]);

    and implements `from_transformer(transformer, max_sequence_length, **options)`, `prepare_base_call` and, when it
    acts inside the base, `_install_hooks`/`_remove_hooks` (callers use `install`/`uninstall`, which keep one
    component's hooks per transformer).
    """

    training_names: ClassVar[dict[str, dict[str, Any]]] = {}
    description: ClassVar[str] = "a conditioning component"
    card_text: ClassVar[str] = (
        "# Restoration conditioning for `{{ base_model }}`\n\n{{ description | capitalize }} "
        "(`{{ component._class_name }}`)."
    )
    module_file: ClassVar[str | None] = None
    geometry_keys: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[type[ConditioningOptions]] = ConditioningOptions
    training_stages: ClassVar[tuple[str, ...]] = ("adapter",)  # `fluxir-train --stage` values it supports
    lora_targets: ClassVar[str | tuple[str, ...] | None] = None  # the base projections its own LoRA updates
    gradient_checkpointing_refusal: ClassVar[str | None] = None  # why the base may not be checkpointed, if so
    _auto_class = "AutoModel"  # config.json's `auto_map` points AutoModel at `module_file`

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "training_names" in cls.__dict__:
            register_conditioning(cls)

    # ------------------------------------------------------------------ building and checking
    @classmethod
    def from_transformer(cls, transformer, max_sequence_length: int = 512, **options):
        """A fresh component for `transformer`'s geometry (`options`: the class's own settings)."""
        raise NotImplementedError

    @classmethod
    def geometry_of(cls, transformer) -> dict[str, Any]:
        """`transformer`'s values of this class's `geometry_keys` (the constructor arguments that describe the base)."""
        return {key: transformer.config[key] for key in cls.geometry_keys}

    def freeze_unreachable_parameters(self) -> list[str]:
        """Freeze the parameters no loss can reach (they would stall DDP, which waits for a gradient from every
        trainable parameter) and return their names; the trainer calls it once. None by default."""
        return []

    def check_compatible(self, transformer) -> None:
        """Raise a `ValueError` naming every `geometry_keys` setting where `transformer` differs from the base this
        component was built for."""
        check_base_geometry(
            self, transformer, self.geometry_keys, f"Load the base model this {type(self).__name__} was trained on."
        )

    # ------------------------------------------------------------------ loading the right kind
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' `from_pretrained`, after checking that the folder holds this kind of component (a UMMF folder
        given to `FluxIRAdapter`, say, gets an error that names both, not a list of missing weights)."""
        config = cls.load_config(pretrained_model_name_or_path, **{k: kwargs[k] for k in _LOAD_KWARGS if k in kwargs})
        saved, classes = config.get("_class_name"), conditioning_classes()
        if saved and saved != cls.__name__ and saved in classes:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds {classes[saved].description} ({saved}), not a {cls.__name__}. "
                f"Load it with `pipe.load_conditioning({str(pretrained_model_name_or_path)!r})` or "
                f"`{saved}.from_pretrained(...)`."
            )
        if cls.lora_targets is not None:
            legacy = _component_file(pretrained_model_name_or_path, LEGACY_LORA_NAME, kwargs)
            if legacy is not None:
                return cls._from_legacy_folder(pretrained_model_name_or_path, config, legacy, kwargs)
        component = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        component._fill_missing_caches()
        return component

    @classmethod
    def _from_legacy_folder(cls, path, config: dict, lora_file: Path, kwargs: dict):
        """A folder written before components held their LoRA: the component's weights plus diffusers' LoRA file."""
        from safetensors.torch import load_file

        component = cls.from_config(config)
        weights = _component_file(path, "diffusion_pytorch_model.safetensors", kwargs)
        missing, unexpected = component.load_state_dict(load_file(str(weights)) if weights else {}, strict=False)
        if unexpected or any(not key.startswith(("lora.", "task_")) for key in missing):
            raise ValueError(f"{path} does not hold the weights of a {cls.__name__} (missing {missing[:3]}).")
        component.lora.load_diffusers(load_file(str(lora_file)))
        component._fill_missing_caches()
        return component.to(dtype=kwargs.get("dtype") or kwargs.get("torch_dtype") or torch.float32).eval()

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        # `auto_map` is for AutoModel, not an argument: drop it rather than warn on every load
        return super().extract_init_dict({k: v for k, v in config_dict.items() if k != "auto_map"}, **kwargs)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        save_function: Callable | None = None,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str = "10GB",
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """[`~diffusers.ModelMixin.save_pretrained`] (same arguments, so a pipeline's `variant` and
        `safe_serialization` reach the component), plus the small module file that lets
        `diffusers.AutoModel.from_pretrained(folder_or_repo, trust_remote_code=True)` find this class (written first,
        so a `push_to_hub=True` upload includes it)."""
        from ..module_files import write_import_file

        if is_main_process and self.module_file is not None:
            Path(save_directory).mkdir(parents=True, exist_ok=True)
            write_import_file(save_directory, self.module_file, type(self))
        super().save_pretrained(
            save_directory,
            is_main_process=is_main_process,
            save_function=save_function,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            push_to_hub=push_to_hub,
            **kwargs,
        )

    # ------------------------------------------------------------------ the base call
    def install(self, transformer) -> None:
        """
        Put this component's hooks on `transformer`, once. A transformer carries one component's hooks: those of any
        other component (of any kind, however it got there) are removed first. Which component owns the hooks is
        recorded on the transformer by a weak reference, so a new component never passes for a freed one.

        Raises:
            ValueError: `transformer` has another geometry, or a cache is enabled on it (enable caches after
                installing, so the cache sees the controlled blocks).
        """
        owner = getattr(transformer, _OWNER, None)
        if owner is not None and owner() is self:
            return
        self.check_compatible(transformer)
        if getattr(transformer, "is_cache_enabled", False):
            raise ValueError(
                "A cache is enabled on this transformer: install the conditioning first, then enable the cache "
                "(`pipe.transformer.disable_cache()`, build the pipeline, then `pipe.transformer.enable_cache(...)`)."
            )
        uninstall_conditioning(transformer)
        self._install_hooks(transformer)
        setattr(transformer, _OWNER, weakref.ref(self))

    @staticmethod
    def uninstall(transformer) -> None:
        """Remove every conditioning component's hooks from `transformer` (whichever installed them)."""
        uninstall_conditioning(transformer)

    def _install_hooks(self, transformer) -> None:
        """The kind's own hooks on a `transformer` that carries none ([`install`] decides when); none by default."""

    @staticmethod
    def _remove_hooks(transformer) -> None:
        """Remove the hooks [`_install_hooks`] of this kind puts on `transformer`; nothing by default."""

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
            conditioning_scale (`float`): Strength of the condition, for this call only.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ prompt caches
    def _register_empty_prompt_cache(self, max_sequence_length: int, joint_dim: int, pooled_dim: int) -> None:
        # Cached text embeddings (T5 and pooled CLIP) of the empty prompt and of each task prompt (an all-in-one
        # component), so restoration needs no text encoder unless the caller writes a prompt of their own.
        self.register_buffer("empty_prompt_embeds", torch.zeros(max_sequence_length, joint_dim))
        self.register_buffer("empty_pooled_prompt_embeds", torch.zeros(pooled_dim))
        self.register_buffer("empty_prompt_embeds_length", torch.zeros((), dtype=torch.long))
        self._register_task_prompt_cache()

    def _register_task_prompt_cache(self) -> None:
        count = len(self.config.get("task_prompts") or {})
        like = self.empty_prompt_embeds
        self.register_buffer("task_prompt_embeds", like.new_zeros(count, *like.shape))
        self.register_buffer(
            "task_pooled_prompt_embeds", like.new_zeros(count, self.empty_pooled_prompt_embeds.numel())
        )
        self.register_buffer("task_prompt_embeds_length", torch.zeros(count, dtype=torch.long, device=like.device))

    def _fill_missing_caches(self) -> None:
        """After loading weights saved before a cache existed (its buffers are left on the meta device): empty."""
        for name in ("task_prompt_embeds", "task_pooled_prompt_embeds", "task_prompt_embeds_length"):
            buffer = getattr(self, name)
            if buffer.device.type == "meta":
                device = self.empty_prompt_embeds.device
                setattr(self, name, torch.zeros(buffer.shape, dtype=buffer.dtype, device=device))

    def _task_prompt_rows(self) -> list[str]:
        # one cache row per task, in task-name order: saved configs sort their keys, so insertion order is not kept
        task_prompts = self.config.get("task_prompts") or {}
        return [task_prompts[task] for task in sorted(task_prompts)]

    def set_task_prompts(self, task_prompts: dict[str, str] | None) -> None:
        """Record the prompt of each task this component is trained for (`{"denoise": "noise-free, clean, smooth"}`,
        see `fluxir_hub.tasks`), with an empty embedding cache for each ([`cache_prompt_embeds`] fills it)."""
        self.register_to_config(task_prompts=dict(task_prompts) if task_prompts else None)
        self._register_task_prompt_cache()

    @property
    def cached_prompts(self) -> list[str]:
        """The prompts whose text embeddings this component carries (`""` is the empty prompt)."""
        prompts = [""] if self.has_empty_prompt_embeds else []
        lengths = self._cached_buffer("task_prompt_embeds_length").tolist()
        task_prompts = self._task_prompt_rows()
        return prompts + [prompt for prompt, length in zip(task_prompts, lengths, strict=False) if length > 0]

    def set_prompt_embeds(self, prompt: str, prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor) -> None:
        r"""
        Store the embeddings of `prompt`, the empty prompt or one of the component's task prompts (saved with it).

        Args:
            prompt (`str`): `""` or a value of `config.task_prompts`.
            prompt_embeds (`torch.Tensor` of shape `(text_sequence_length, joint_attention_dim)` or with a leading 1).
            pooled_prompt_embeds (`torch.Tensor` of shape `(pooled_projection_dim,)` or with a leading 1).
        """
        if prompt == "":
            return self.set_empty_prompt_embeds(prompt_embeds, pooled_prompt_embeds)
        task_prompts = self._task_prompt_rows()
        if prompt not in task_prompts:
            raise ValueError(f"{prompt!r} is not one of this component's task prompts {task_prompts}.")
        if len(task_prompts) != self.task_prompt_embeds.shape[0]:
            self._register_task_prompt_cache()  # `task_prompts` was set without `set_task_prompts`
        index = task_prompts.index(prompt)
        prompt_embeds, pooled_prompt_embeds, length = self._checked_embeds(prompt_embeds, pooled_prompt_embeds)
        with torch.no_grad():
            self.task_prompt_embeds[index].zero_()
            self.task_prompt_embeds[index, :length].copy_(prompt_embeds)
            self.task_pooled_prompt_embeds[index].copy_(pooled_prompt_embeds)
            self.task_prompt_embeds_length[index].fill_(length)

    def get_prompt_embeds(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The cached `(prompt_embeds (L, joint_dim), pooled_prompt_embeds (pooled_dim,))` of `prompt`, or None."""
        if prompt == "":
            return self.get_empty_prompt_embeds() if self.has_empty_prompt_embeds else None
        task_prompts = self._task_prompt_rows()
        if prompt not in task_prompts:
            return None
        index, lengths = task_prompts.index(prompt), self._cached_buffer("task_prompt_embeds_length")
        length = int(lengths[index]) if index < lengths.shape[0] else 0  # no cache when set without set_task_prompts
        if length == 0:
            return None
        embeds = self._cached_buffer("task_prompt_embeds")[index, :length]
        return embeds, self._cached_buffer("task_pooled_prompt_embeds")[index]

    def _checked_embeds(self, prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor):
        prompt_embeds = prompt_embeds.reshape(-1, self.config.joint_attention_dim)
        pooled_prompt_embeds = pooled_prompt_embeds.reshape(self.config.pooled_projection_dim)
        length = prompt_embeds.shape[0]
        if length > self.config.max_sequence_length:
            raise ValueError(
                f"Prompt embeddings have {length} tokens; the adapter holds at most {self.config.max_sequence_length}."
            )
        return prompt_embeds, pooled_prompt_embeds, length

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
        prompt_embeds, pooled_prompt_embeds, length = self._checked_embeds(prompt_embeds, pooled_prompt_embeds)
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


def uninstall_conditioning(transformer) -> None:
    """Remove the hooks of every registered conditioning kind from `transformer`, and its owner record."""
    for cls in conditioning_classes().values():
        cls._remove_hooks(transformer)
    transformer.__dict__.pop(_OWNER, None)


def install_block_hooks(transformer, name: str, make_hook: Callable[[int], Any]) -> None:
    """Register `make_hook(index)` as hook `name` on every block of `transformer` (double then single blocks),
    through diffusers' hook registry, replacing any hook of that name."""
    from diffusers.hooks import HookRegistry

    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
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


def _component_file(path, filename: str, kwargs: dict) -> Path | None:
    """`filename` of a saved component (a local folder, or a Hub repo through the cache), or None if it has none."""
    subfolder = kwargs.get("subfolder") or ""
    if Path(path).is_dir():
        local = Path(path) / subfolder / filename
        return local if local.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
    try:
        return Path(hf_hub_download(str(path), filename, subfolder=subfolder or None, **hub))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


@contextlib.contextmanager
def hooks_of(component, transformer, then=None):
    """
    Run a block with `component`'s hooks on `transformer` (a frozen copy: a distillation teacher, an RL reference),
    then put `then`'s back (the copy being trained), so anything that needs gradients afterwards sees its hooks.
    """
    component.install(transformer)
    try:
        yield component
    finally:
        if then is not None:
            then.install(transformer)


def remove_block_hooks(transformer, name: str) -> None:
    """Remove hook `name` from every block of `transformer`."""
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        registry = getattr(block, "_diffusers_hook", None)
        if registry is not None:
            registry.remove_hook(name, recurse=False)


def check_base_geometry(component, transformer, keys: tuple[str, ...], fix: str) -> None:
    """Raise a `ValueError` naming every setting in `keys` where `transformer` differs from the base `component`
    was built for; `fix` says what to do."""

    def plain(value):
        return list(value) if isinstance(value, (list, tuple)) else value

    mismatches = [
        f"{key}: {type(component).__name__} expects {plain(component.config[key])!r}, transformer has "
        f"{plain(transformer.config.get(key))!r}"
        for key in keys
        if plain(transformer.config.get(key)) != plain(component.config[key])
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
    from diffusers.configuration_utils import ConfigMixin

    class ComponentConfig(ConfigMixin):  # reads any component's config.json, local or from the Hub
        config_name = "config.json"

    classes = conditioning_classes()
    hub = {k: kwargs[k] for k in _LOAD_KWARGS if k in kwargs}
    config = ComponentConfig.load_config(pretrained_model_name_or_path, **hub)
    saved = config.get("_class_name")
    if not isinstance(saved, str) or saved not in classes:
        raise ValueError(
            f"{pretrained_model_name_or_path} is not a conditioning component (its config names {saved!r}); "
            f"expected {', '.join(f'{c.description} ({name})' for name, c in classes.items())}."
        )
    return classes[saved]


def load_conditioning_component(pretrained_model_name_or_path, **kwargs):
    """Load whichever conditioning component a folder or Hub repo holds."""
    return conditioning_class_of(pretrained_model_name_or_path, **kwargs).from_pretrained(
        pretrained_model_name_or_path, **kwargs
    )
