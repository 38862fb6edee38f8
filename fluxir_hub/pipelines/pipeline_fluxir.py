# Copyright 2026 The FluxIR Hub authors. Licensed under the Apache License, Version 2.0.
"""FluxIRPipeline: real-world image restoration with FLUX.1 steered by a FluxIR adapter."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import FluxLoraLoaderMixin
from diffusers.models import AutoencoderKL, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from ..color_fix import COLOR_FIX_MODES, apply_color_fix
from ..image_io import to_rgb
from ..latents import image_ids, pack_latents, text_ids, unpack_latents
from ..models.adapter_fluxir import FluxIRAdapter
from ..sampling import (
    DEFAULT_RESTORATION_THRESHOLD,
    DEFAULT_RESTORATION_WEIGHT,
    RESTORATION_SCHEDULES,
    apply_restoration_guidance,
    restoration_clock,
)
from ..schedules import resolution_shift
from ..tasks import get_task
from ..tiling import tiled_map
from ..tts import TestTimeSearch, TTSConfig
from .pipeline_output import FluxIRPipelineOutput

logger = logging.get_logger(__name__)
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"  # where fluxir-train writes a component's LoRA

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers.utils import load_image
        >>> from fluxir_hub import FluxIRAdapter, FluxIRPipeline

        >>> adapter = FluxIRAdapter.from_pretrained("your-org/fluxir-adapter", dtype=torch.bfloat16)
        >>> pipe = FluxIRPipeline.from_pretrained(
        ...     "black-forest-labs/FLUX.1-dev", adapter=adapter, text_encoder_2=None, dtype=torch.bfloat16
        ... ).to("cuda")
        >>> lq = load_image("old_photo.png")
        >>> image = pipe(lq, upscale=4, num_inference_steps=20, generator=torch.manual_seed(0)).images[0]
        >>> image.save("restored.png")
        ```
"""

PipelineImage = PIL.Image.Image | np.ndarray | torch.Tensor | list[PIL.Image.Image] | list[np.ndarray]

MIN_INPUT_SIDE = 8  # below this there is nothing to restore
OUTPUT_MULTIPLE = 16  # FLUX's VAE factor 8 x 2x2 token packing; a pipeline uses its own VAE's factor x 2
MAX_UPSCALE = 8
DEFAULT_NUM_INFERENCE_STEPS = 20
DEFAULT_MAX_OUTPUT_PIXELS = 4096 * 4096
DEFAULT_GUIDANCE_SCALE = 3.5
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def output_size(width: int, height: int, upscale: float, multiple: int = OUTPUT_MULTIPLE) -> tuple[int, int]:
    """
    Output `(width, height)` for an input of `width x height` pixels: each side times `upscale`, rounded to the
    nearest multiple of `multiple` (halves round up; the VAE and 2x2 packing need multiples of its factor x 2: 16 for
    FLUX.1), and at least `multiple`.
    """
    return tuple(max(multiple, math.floor(side * upscale / multiple + 0.5) * multiple) for side in (width, height))


def _image_size(image: PIL.Image.Image | np.ndarray | torch.Tensor) -> tuple[int, int]:
    if isinstance(image, PIL.Image.Image):
        return image.size
    if isinstance(image, np.ndarray):  # (H, W, C) or (H, W)
        return image.shape[1], image.shape[0]
    return image.shape[-1], image.shape[-2]  # (C, H, W) or (B, C, H, W)


def _as_image_list(image: PipelineImage) -> list:
    if image is None:
        raise ValueError("`image` is required: pass a PIL image, an array or tensor, or a list of them.")
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("`image` is empty: pass at least one image.")
        # a list of batches, e.g. `(1, 3, H, W)` tensors, is concatenated as diffusers' `VaeImageProcessor` does
        return [item for batch in image for item in _as_image_list(batch)]
    if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4:
        return list(image)
    return [image]


def _repeat_batch(kwargs: dict[str, Any], times: int) -> dict[str, Any]:
    """`predict_velocity` kwargs with every per-image tensor repeated `times` times (image-major), for a beam."""
    repeated = dict(kwargs)
    for key in ("lq_latents", "prompt_embeds", "pooled_prompt_embeds", "guidance"):
        if repeated.get(key) is not None:
            repeated[key] = repeated[key].repeat_interleave(times, dim=0)
    return repeated


def _to_pil(image) -> PIL.Image.Image:
    """A normalised image (upright RGB PIL, or a `(3, H, W)` tensor in [0, 1]) as a PIL image, for a captioner."""
    if isinstance(image, PIL.Image.Image):
        return image
    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return PIL.Image.fromarray(array)


def _normalise_image(image):
    """
    PIL of any mode -> upright RGB PIL. Integer arrays (8- or 16-bit) -> PIL; float arrays and tensors are taken as
    [0, 1] and returned as `(3, H, W)` float tensors. Greyscale is repeated to RGB. Anything else (other types,
    channel counts, non-finite or out-of-range values) is refused with a message that says how to pass it.
    """
    if isinstance(image, PIL.Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 or image.dtype == np.uint16:
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            if image.ndim == 3 and image.shape[-1] not in (3, 4):
                raise ValueError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}.")
            if image.dtype == np.uint16:  # 16-bit: keep the full range, in 8 bits
                image = (image.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
            return to_rgb(PIL.Image.fromarray(image))
        if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.floating):
            raise ValueError(
                f"Image arrays must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}; convert it first "
                "(e.g. `array.astype(np.float32)` for a mask in {0, 1})."
            )
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(f"An image array must be (H, W) or (H, W, C), got shape {image.shape}.")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.bool or not image.is_floating_point():
            raise ValueError(f"Image tensors must be float in [0, 1], got dtype {image.dtype}.")
        if image.ndim == 2:
            image = image[None]
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"An image tensor must be (3, H, W) or (1, H, W) in [0, 1], got shape {tuple(image.shape)}; drop the "
                "alpha channel or pass a PIL image (transparency is then composited on white)."
            )
        if image.numel() == 0:
            raise ValueError(f"The image tensor has no pixels (shape {tuple(image.shape)}).")
        if not torch.isfinite(image).all():
            raise ValueError("The image holds NaN or infinite values.")
        if image.min() < -1e-3 or image.max() > 1 + 1e-3:
            raise ValueError(
                f"Float images must be in [0, 1], got values from {image.min().item():.3g} to {image.max().item():.3g}."
            )
        return image.float().clamp(0, 1).expand(3, -1, -1)
    raise ValueError(
        f"`image` must be a PIL image, a numpy array or a torch tensor (or a list of them), got {type(image).__name__}."
    )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_argument_types(prompt, upscale, num_inference_steps, tile_size, tile_overlap, callback_on_step_end) -> None:
    """Refuse arguments of the wrong type by name, before anything uses them (a `bool` is not a number here)."""
    if not (
        isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt))
    ):
        raise TypeError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
    if upscale is not None and not _is_number(upscale):
        raise TypeError(f"`upscale` must be a number from 1 to {MAX_UPSCALE}, got {upscale!r}.")
    if num_inference_steps is not None and not _is_int(num_inference_steps):
        raise TypeError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
    if tile_size is not None and tile_size != "auto" and not _is_int(tile_size):
        raise TypeError(f"`tile_size` must be an integer number of output pixels, 'auto' or None, got {tile_size!r}.")
    if tile_overlap is not None and not _is_int(tile_overlap):
        raise TypeError(f"`tile_overlap` must be an integer number of output pixels, got {tile_overlap!r}.")
    if callback_on_step_end is not None and not callable(callback_on_step_end):
        raise TypeError(f"`callback_on_step_end` must be callable, got {type(callback_on_step_end).__name__}.")


def _code_snapshot(name_or_path: str | os.PathLike, kwargs: dict) -> tuple[Path | None, str | None]:
    """The local folder holding the code and configs of the pipeline `name_or_path` (a folder, or a Hub repo's
    snapshot of its `.py` and `.json` files) and the commit it was read at (`None` for a folder); `(None, None)` when
    the Hub cannot be reached and nothing is cached, so diffusers' own loading reports that."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path), None
    from huggingface_hub import snapshot_download

    hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    try:
        folder = Path(snapshot_download(str(name_or_path), allow_patterns=["*.py", "*.json"], **hub))
    except Exception:  # not on the Hub, offline with nothing cached, gated: diffusers' loading says what is wrong
        return None, None
    return folder, folder.name  # a snapshot folder is named after its commit


@dataclass
class CallPlan:
    """A call's inputs with every default resolved ([`FluxIRPipeline.resolve_call`])."""

    images: list  # upright RGB PIL images or `(3, H, W)` tensors in [0, 1], one per output
    prompt: str | list[str]
    upscale: float
    num_inference_steps: int
    sigmas: Any  # the unshifted noise levels, one per step
    start_lq_weight: float  # > 0: start from `(1 - w) noise + w LQ latent` (a distilled student's start)
    restoration_weight: float
    color_fix: str
    max_sequence_length: int
    tile_size: int | None
    tile_overlap: int


def resolve_task_prompt(task_prompts: dict[str, str] | None, task: str | None, prompt: str = "") -> str:
    """
    The text a call encodes: `prompt`, followed by the component's prompt for `task` (`task_prompts`, from an
    all-in-one component's config).

    Raises:
        ValueError: an unknown task, or one the component was not trained for.
    """
    if task is None:
        return prompt
    get_task(task)  # an unknown task is named
    if not task_prompts:
        if task == "sr":  # a super-resolution adapter: trained on the empty (or the caller's) prompt
            return prompt
        raise ValueError(
            f"This adapter was trained for super-resolution only (its config has no `task_prompts`), so it cannot "
            f"do task {task!r}. Use task='sr', or load an all-in-one adapter (fluxir-train --degradation_preset mixed)."
        )
    if task not in task_prompts:
        raise ValueError(f"This adapter was not trained for task {task!r}; it knows {', '.join(task_prompts)}.")
    return f"{prompt}, {task_prompts[task]}" if prompt else task_prompts[task]


class FluxIRPipeline(DiffusionPipeline, FluxLoraLoaderMixin):
    r"""
    Restore real-world low-quality images with FLUX.1 controlled by a [`FluxIRAdapter`] (paper 001).

    The low-quality (LQ) image is resized to the output size, VAE-encoded and packed like the latent being denoised;
    at every step the adapter turns it into per-block residuals for both streams of the transformer. After each
    step the restoration sampling strategy of paper 004 pulls the noisy latent toward the LQ latent early in the
    trajectory (`restoration_weight`), and a colour fix against the resized LQ removes colour drift.

    Args:
        scheduler ([`~diffusers.FlowMatchEulerDiscreteScheduler`]): FLUX's flow-matching Euler scheduler.
        vae ([`~diffusers.AutoencoderKL`]): FLUX's 16-channel VAE.
        text_encoder ([`~transformers.CLIPTextModel`], *optional*): CLIP text encoder (pooled embedding).
        tokenizer ([`~transformers.CLIPTokenizer`], *optional*): CLIP tokenizer.
        text_encoder_2 ([`~transformers.T5EncoderModel`], *optional*): T5 encoder. Not needed for the default empty
            prompt when the adapter carries the cached empty-prompt embeddings.
        tokenizer_2 ([`~transformers.T5TokenizerFast`], *optional*): T5 tokenizer.
        transformer ([`~diffusers.FluxTransformer2DModel`]): The frozen FLUX.1 transformer.
        adapter ([`FluxIRAdapter`]): The restoration adapter.
    """

    # As diffusers does for ControlNets, the adapter stays out of the offload chain: it gets a hook of its own that
    # loads it at its first call and keeps it on the accelerator until the call ends, so its SE layers (which run
    # inside the transformer's blocks) are never offloaded while the transformer runs.
    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"
    _optional_components = ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"]
    _callback_tensor_inputs = ["latents", "lq_latents", "prompt_embeds"]

    def __init__(
        self,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel | None,
        tokenizer: CLIPTokenizer | None,
        text_encoder_2: T5EncoderModel | None,
        tokenizer_2: T5TokenizerFast | None,
        transformer: FluxTransformer2DModel,
        adapter: FluxIRAdapter,
    ):
        super().__init__()
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
            transformer=transformer,
            adapter=adapter,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8
        # Packed tokens cover 2x2 latent pixels, so image sides must be multiples of vae_scale_factor * 2.
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2, resample="bicubic")
        self.tokenizer_max_length = self.tokenizer.model_max_length if getattr(self, "tokenizer", None) else 77
        # The adapter's control hooks go on the base blocks once, here; each call only passes features.
        if getattr(self, "transformer", None) is not None and getattr(self, "adapter", None) is not None:
            self.adapter.install(self.transformer)

    # ------------------------------------------------------------------ saving and loading
    def to_json_string(self) -> str:
        """`model_index.json` naming the module files diffusers' generic loaders resolve (see `fluxir_hub.hub_code`):
        `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` then returns this class, and a pushed
        pipeline passes diffusers' download check for custom components."""
        from ..hub_code import PIPELINE_MODULE

        data = json.loads(super().to_json_string())
        data["_class_name"] = [PIPELINE_MODULE, self.__class__.__name__]
        module_file = getattr(getattr(self, "adapter", None), "module_file", None)
        if isinstance(data.get("adapter"), list) and module_file is not None:
            data["adapter"] = [module_file, type(self.adapter).__name__]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """[`~diffusers.DiffusionPipeline.save_pretrained`], plus `pipeline_fluxir.py` at the root (written first, so a
        `push_to_hub=True` upload includes it); the adapter writes its own module file."""
        from ..hub_code import PIPELINE_MODULE, write_module_file

        Path(save_directory).mkdir(parents=True, exist_ok=True)
        write_module_file(save_directory, PIPELINE_MODULE)
        super().save_pretrained(
            save_directory,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            push_to_hub=push_to_hub,
            **kwargs,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """[`~diffusers.DiffusionPipeline.from_pretrained`]. A folder or repo saved by this class names its classes
        through small module files; when every piece of code it carries is exactly the import-only files this package
        writes, no `trust_remote_code` is needed (nothing else would run). Any other code runs only with the caller's
        explicit `trust_remote_code=True`; without it, loading stops before anything runs, naming each file.

        Raises:
            ValueError: the folder or repo carries code this package did not write and `trust_remote_code` is not set.
        """
        from ..hub_code import check_folder_code

        if not kwargs.get("trust_remote_code") and "custom_pipeline" not in kwargs:
            folder, commit = _code_snapshot(pretrained_model_name_or_path, kwargs)
            if folder is not None and check_folder_code(folder, pretrained_model_name_or_path):
                if kwargs.get("trust_remote_code") is None:  # an explicit `False` stays the caller's word
                    kwargs["trust_remote_code"] = True
                if commit is not None:  # load exactly the files checked, even if the branch moves meanwhile
                    kwargs["revision"] = commit
        # A conditioning passed by the caller replaces the folder's: diffusers would try to import the module file
        # `model_index.json` names for it to check its type, so it is put in after loading instead.
        component = kwargs.get("adapter")
        if component is not None:
            kwargs["adapter"] = None  # not loaded from the folder at all
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if component is not None:
            pipe.load_conditioning(None, component=component)
        return pipe

    def load_conditioning(self, pretrained_model_name_or_path: str | os.PathLike, component=None, **kwargs) -> None:
        r"""
        Make a saved conditioning component this pipeline's `adapter`, whichever kind it is (a FluxIR adapter, UMMF,
        a DRA adapter, or any other registered [`ConditioningMixin`] class; the folder's config says which). The
        previous component's hooks leave the transformer; the new one's are installed.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): Hub repo id or folder.
            component (*optional*): The component, when the caller already loaded it from that folder.
            kwargs: Passed to `from_pretrained` (`revision`, `dtype`, `token`, ...).

        Raises:
            ValueError: the folder is not a conditioning component, or it was made for another base geometry.
        """
        from ..models.conditioning import load_conditioning_component

        if component is None:
            component = load_conditioning_component(pretrained_model_name_or_path, **kwargs)
        component.check_compatible(self.transformer)
        if getattr(self, "adapter", None) is not None:
            self.adapter.uninstall(self.transformer)
        component.to(self.transformer.device)
        component.install(self.transformer)
        self.register_modules(adapter=component)

    # ------------------------------------------------------------------ properties
    @property
    def output_multiple(self) -> int:
        """Output sides are multiples of this: the VAE's downsampling factor times the 2x2 token packing."""
        return self.vae_scale_factor * 2

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def joint_attention_kwargs(self) -> dict[str, Any] | None:
        return self._joint_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ------------------------------------------------------------------ prompts
    def _clip_pooled_embeds(self, prompt: list[str], device: torch.device) -> torch.Tensor:
        inputs = self.tokenizer(
            prompt, padding="max_length", max_length=self.tokenizer_max_length, truncation=True, return_tensors="pt"
        )
        # token ids go to the execution device: under sequential offload the encoder's own `.device` is "meta"
        output = self.text_encoder(inputs.input_ids.to(device), output_hidden_states=False)
        return output.pooler_output.to(device)

    def _t5_embeds(self, prompt: list[str], max_sequence_length: int, device: torch.device) -> torch.Tensor:
        inputs = self.tokenizer_2(
            prompt, padding="max_length", max_length=max_sequence_length, truncation=True, return_tensors="pt"
        )
        return self.text_encoder_2(inputs.input_ids.to(device), output_hidden_states=False)[0].to(device)

    def encode_prompt(
        self,
        prompt: str | list[str],
        prompt_2: str | list[str] | None = None,
        device: torch.device | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""
        Encode prompts into T5 and pooled CLIP embeddings.

        Prompts the adapter carries embeddings of (the empty prompt, and an all-in-one adapter's task prompts) come
        from that cache, so restoring without a prompt of one's own needs no text encoder.

        Args:
            prompt (`str` or `list[str]`): Prompt(s) for CLIP (and T5 unless `prompt_2` is given).
            prompt_2 (`str` or `list[str]`, *optional*): Prompt(s) for T5.
            device (`torch.device`, *optional*): Where the embeddings go.
            prompt_embeds (`torch.Tensor` of shape `(batch_size, text_sequence_length, joint_attention_dim)`, *optional*):
                Precomputed T5 embeddings; skips the text encoders.
            pooled_prompt_embeds (`torch.Tensor` of shape `(batch_size, pooled_projection_dim)`, *optional*):
                Precomputed pooled CLIP embeddings; needed with `prompt_embeds`.
            max_sequence_length (`int`, *optional*): T5 token length; defaults to what `__call__` uses: the adapter's
                (512 for FLUX.1), or the T5 tokenizer's context when the pipeline has no adapter.

        Returns:
            `(prompt_embeds, pooled_prompt_embeds, text_ids)`.
        """
        device = device or self._execution_device
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        adapter = getattr(self, "adapter", None)
        if prompt_embeds is None:
            prompt = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_2 = prompt if prompt_2 is None else ([prompt_2] if isinstance(prompt_2, str) else list(prompt_2))
            cached = (
                [adapter.get_prompt_embeds(p) for p in prompt] if adapter is not None and prompt == prompt_2 else []
            )
            if cached and all(c is not None for c in cached) and len({c[0].shape for c in cached}) == 1:
                if len(set(prompt)) == 1:  # one prompt for the batch: a broadcast view, as it always was
                    prompt_embeds = cached[0][0].to(device)[None].expand(len(prompt), -1, -1)
                    pooled_prompt_embeds = cached[0][1].to(device)[None].expand(len(prompt), -1)
                else:
                    prompt_embeds = torch.stack([c[0] for c in cached]).to(device)
                    pooled_prompt_embeds = torch.stack([c[1] for c in cached]).to(device)
            else:
                missing = [
                    name
                    for name in ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
                    if getattr(self, name, None) is None
                ]
                if missing:
                    raise ValueError(
                        f"Encoding a prompt needs {', '.join(missing)}, which this pipeline was loaded without. "
                        "Load the pipeline with its text encoders, pass `prompt_embeds` and `pooled_prompt_embeds`, "
                        "or use the empty prompt with an adapter that caches its embeddings."
                    )
                pooled_prompt_embeds = self._clip_pooled_embeds(prompt, device)
                prompt_embeds = self._t5_embeds(prompt_2, max_sequence_length, device)
        transformer = getattr(self, "transformer", None)
        dtype = transformer.dtype if transformer is not None else prompt_embeds.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        pooled_prompt_embeds = pooled_prompt_embeds.to(device=device, dtype=dtype)
        return prompt_embeds, pooled_prompt_embeds, text_ids(prompt_embeds.shape[1], device=device, dtype=dtype)

    def auto_tile_size(self, width: int, height: int, text_tokens: int = 512) -> int | None:
        """The tile size `tile_size="auto"` chooses for a `width` x `height` output: `None` (one pass) when it fits
        the execution device's free memory, else the largest tile that does."""
        from ..tiling import auto_tile_size, free_memory

        device = self._execution_device
        return auto_tile_size(
            width,
            height,
            self.transformer.config.num_attention_heads * self.transformer.config.attention_head_dim,
            torch.finfo(self.transformer.dtype).bits // 8,
            free_memory(device),
            self.output_multiple,
            text_tokens,
        )

    @property
    def default_max_sequence_length(self) -> int:
        """T5 tokens per prompt when the caller gives none: the adapter's `theta_p` length, else the tokenizer's."""
        adapter = getattr(self, "adapter", None)
        if adapter is not None:
            return adapter.config.max_sequence_length
        tokenizer_2 = getattr(self, "tokenizer_2", None)
        return min(512, tokenizer_2.model_max_length) if tokenizer_2 is not None else 512

    @torch.no_grad()
    def cache_prompt_embeds(self, max_sequence_length: int | None = None) -> None:
        """
        Encode the empty prompt and each of the adapter's task prompts once and store them in the adapter (saved with
        `adapter.save_pretrained`), so later runs without a prompt of their own need no text encoder. Afterwards the
        text encoders can be dropped, e.g. `pipe.text_encoder_2 = None`.
        """
        device = self._execution_device
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        for prompt in ["", *(self.adapter.config.get("task_prompts") or {}).values()]:  # one at a time: as a call
            pooled = self._clip_pooled_embeds([prompt], device)
            embeds = self._t5_embeds([prompt], max_sequence_length, device)
            self.adapter.set_prompt_embeds(prompt, embeds[0], pooled[0])

    cache_empty_prompt_embeds = cache_prompt_embeds  # the name before task prompts were cached too

    # ------------------------------------------------------------------ resolving and checking a call
    def resolve_call(
        self,
        image,
        prompt,
        task,
        captioner,
        upscale,
        num_inference_steps,
        sigmas,
        restoration_weight,
        color_fix,
        tile_size,
        tile_overlap,
        num_images_per_prompt,
        max_sequence_length,
        prompt_embeds,
    ) -> CallPlan:
        """Every default of a call resolved, in one place: the task's prompt, size and fidelity settings, the
        captioner's prompt, the adapter's distilled schedule (and start), the T5 length, automatic tiles. The
        arguments are `__call__`'s; [`check_inputs`] checks the result."""
        prompt, upscale = self.task_prompt(task, prompt, upscale)
        spec = get_task(task) if task is not None else None
        # The adapter's own defaults (chosen on validation data for it), after the task's and before FLUX.1's.
        own = (self.adapter.config.get("sampling_defaults") if self.adapter is not None else None) or {}
        if color_fix is None:
            color_fix = spec.color_fix if spec and not spec.keeps_colors else own.get("color_fix", "wavelet")
        if restoration_weight is None:
            weight = spec.restoration_weight if spec else None
            restoration_weight = (
                own.get("restoration_weight", DEFAULT_RESTORATION_WEIGHT) if weight is None else weight
            )
        # Upright RGB first: EXIF rotation changes the size the checks and the output are based on.
        images = [_normalise_image(im) for im in _as_image_list(image)]
        if captioner is not None and prompt_embeds is None and (prompt == "" or prompt == [""] * len(images)):
            captions = [str(captioner(_to_pil(im))) for im in images]
            prompt, _ = self.task_prompt(task, captions if len(captions) > 1 else captions[0], upscale)
        start_lq_weight = 0.0  # a student distilled from an LQ-mixed start begins there on its own schedule
        distilled = self.adapter.config.get("distilled_sigmas") if self.adapter is not None else None
        if sigmas is not None:
            sigmas = [float(x) for x in sigmas]
            num_inference_steps = len(sigmas)
        elif num_inference_steps is None and distilled:
            sigmas, num_inference_steps = [float(x) for x in distilled], len(distilled)
            start_lq_weight = float(self.adapter.config.get("distilled_start_lq_weight") or 0.0)
        elif num_inference_steps is None:
            num_inference_steps = own.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS)
        elif distilled and num_inference_steps != len(distilled):
            logger.warning(
                f"This adapter was distilled for {len(distilled)} steps; {num_inference_steps} steps run the uniform "
                "schedule it was not trained for. Leave `num_inference_steps` unset to use its own schedule."
            )
        if sigmas is None and isinstance(num_inference_steps, int) and num_inference_steps >= 1:
            sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if isinstance(num_images_per_prompt, int) and num_images_per_prompt > 1:  # each input that many times
            images = [im for im in images for _ in range(num_images_per_prompt)]
            if isinstance(prompt, list) and len(prompt) > 1:
                prompt = [p for p in prompt for _ in range(num_images_per_prompt)]
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        if tile_size == "auto":
            width, height = output_size(*_image_size(images[0]), upscale, self.output_multiple) if images else (0, 0)
            tile_size = self.auto_tile_size(width, height, max_sequence_length)
        if tile_overlap is None:
            tile_overlap = (tile_size or 0) // 4 // self.output_multiple * self.output_multiple
        if prompt_embeds is not None:
            prompt = [""] * prompt_embeds.shape[0]
        return CallPlan(
            images,
            prompt,
            upscale,
            num_inference_steps,
            sigmas,
            start_lq_weight,
            restoration_weight,
            color_fix,
            max_sequence_length,
            tile_size,
            tile_overlap,
        )

    def check_inputs(
        self,
        images: list,
        prompt: str | list[str] | None,
        upscale: float,
        num_inference_steps: int,
        guidance_scale: float,
        conditioning_scale: float,
        restoration_weight: float,
        restoration_threshold: float,
        color_fix: str,
        tile_size: int | None,
        tile_overlap: int,
        output_type: str,
        max_output_pixels: int | None,
        max_sequence_length: int,
        prompt_embeds: torch.Tensor | None,
        pooled_prompt_embeds: torch.Tensor | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
        sigmas=None,
        num_images_per_prompt: int = 1,
        restoration_schedule: str = "step",
        tts: TTSConfig | None = None,
    ) -> None:
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if sigmas is not None and (
            len(sigmas) == 0
            or any(not 0 < x <= 1 for x in sigmas)
            or any(a <= b for a, b in zip(sigmas[:-1], sigmas[1:], strict=True))
        ):
            raise ValueError(f"`sigmas` must be a decreasing list of noise levels in (0, 1], got {list(sigmas)}.")
        if restoration_schedule not in RESTORATION_SCHEDULES:
            raise ValueError(
                f"`restoration_schedule` must be one of {RESTORATION_SCHEDULES}, got {restoration_schedule!r}."
            )
        if not images:
            raise ValueError("`image` is empty: pass at least one image.")
        sizes = {_image_size(image) for image in images}
        if len(sizes) > 1:
            raise ValueError(
                f"All images of a batch must have the same size, got {sorted(sizes)}; restore them one call at a time."
            )
        width, height = sizes.pop()
        if min(width, height) < MIN_INPUT_SIDE:
            raise ValueError(
                f"`image` is {width}x{height} pixels; each side must be at least {MIN_INPUT_SIDE} pixels to restore."
            )
        if isinstance(prompt, list) and len(prompt) not in (1, len(images)):
            raise ValueError(f"Got {len(prompt)} prompts for {len(images)} images; give one prompt or one per image.")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        if not isinstance(upscale, (int, float)) or not 1 <= upscale <= MAX_UPSCALE:
            raise ValueError(f"`upscale` must be a number from 1 to {MAX_UPSCALE}, got {upscale!r}.")
        if not isinstance(guidance_scale, (int, float)) or not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be a finite, non-negative number, got {guidance_scale}.")
        if not math.isfinite(conditioning_scale):
            raise ValueError(f"`conditioning_scale` must be a finite number, got {conditioning_scale}.")
        if not 0 <= restoration_weight <= 1:
            raise ValueError(f"`restoration_weight` must be in [0, 1], got {restoration_weight}.")
        if not 0 <= restoration_threshold < 1:
            raise ValueError(f"`restoration_threshold` must be in [0, 1), got {restoration_threshold}.")
        if color_fix not in COLOR_FIX_MODES:
            raise ValueError(f"`color_fix` must be one of {COLOR_FIX_MODES}, got {color_fix!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if tile_size is not None:
            multiple = self.output_multiple
            if tile_size < 4 * multiple or tile_size % multiple:
                raise ValueError(
                    f"`tile_size` must be a multiple of {multiple} of at least {4 * multiple} pixels, got {tile_size}."
                )
            if not 0 <= tile_overlap < tile_size:
                raise ValueError(
                    f"`tile_overlap` must be at least 0 and smaller than `tile_size` ({tile_size}), got {tile_overlap}."
                )
        out_w, out_h = output_size(width, height, upscale, self.output_multiple)
        if max_output_pixels is not None and out_w * out_h > max_output_pixels:
            raise ValueError(
                f"The output would be {out_w}x{out_h} ({out_w * out_h / 1e6:.1f} MP), above `max_output_pixels` "
                f"({max_output_pixels / 1e6:.1f} MP). Lower `upscale`, downscale the input, or raise "
                "`max_output_pixels` and set `tile_size`."
            )
        if not isinstance(max_sequence_length, int) or max_sequence_length < 1:
            raise ValueError(f"`max_sequence_length` must be a positive integer, got {max_sequence_length!r}.")
        if max_sequence_length > self.adapter.config.max_sequence_length:
            raise ValueError(
                f"`max_sequence_length` ({max_sequence_length}) exceeds the adapter's "
                f"{self.adapter.config.max_sequence_length}."
            )
        if (prompt_embeds is None) != (pooled_prompt_embeds is None):
            raise ValueError("Pass both `prompt_embeds` and `pooled_prompt_embeds`, or neither.")
        if prompt_embeds is not None:
            width = self.transformer.config.joint_attention_dim
            pooled = self.transformer.config.pooled_projection_dim
            if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != width:
                raise ValueError(
                    f"`prompt_embeds` must be (batch, tokens, {width}) for this transformer, got "
                    f"{tuple(prompt_embeds.shape)}."
                )
            if tuple(pooled_prompt_embeds.shape) != (prompt_embeds.shape[0], pooled):
                raise ValueError(
                    f"`pooled_prompt_embeds` must be ({prompt_embeds.shape[0]}, {pooled}) for these `prompt_embeds`, "
                    f"got {tuple(pooled_prompt_embeds.shape)}."
                )
        if callback_on_step_end_tensor_inputs is not None:
            unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
            if unknown:
                raise ValueError(
                    f"`callback_on_step_end_tensor_inputs` may name {self._callback_tensor_inputs}, got {unknown}."
                )
        if tts is not None:
            tts.validate(num_inference_steps)

    # ------------------------------------------------------------------ latents
    def prepare_lq(
        self, images: list, width: int, height: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Resize the LQ images (RGB PIL images, or arrays/tensors in [0, 1]) to the output size and encode them.

        Returns:
            `(lq_pixels, lq_latents)`: `(B, 3, height, width)` in [-1, 1], and packed latents `(B, N, 64)`.
        """
        lq_pixels = self.image_processor.preprocess(images, height=height, width=width).to(device=device)
        latents = self.vae.encode(lq_pixels.to(self.vae.dtype)).latent_dist.mode()
        latents = (latents - self.vae.config.shift_factor) * self.vae.config.scaling_factor
        return lq_pixels, pack_latents(latents.to(dtype))

    def prepare_latents(
        self,
        batch_size: int,
        width: int,
        height: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Packed starting noise `(batch_size, N, 64)`, or `latents` moved to `device`."""
        channels = self.transformer.config.in_channels // 4
        shape = (batch_size, channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is not None:
            expected = (batch_size, shape[2] * shape[3] // 4, channels * 4)
            if tuple(latents.shape) != expected:
                raise ValueError(f"`latents` must have shape {expected} (packed), got {tuple(latents.shape)}.")
            return latents.to(device=device, dtype=dtype)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"Got {len(generator)} generators for a batch of {batch_size}.")
        return pack_latents(randn_tensor(shape, generator=generator, device=device, dtype=dtype))

    def decode_latents(self, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Packed latents -> images `(B, 3, height, width)` in [-1, 1]."""
        latents = unpack_latents(latents, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        return self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]

    # ------------------------------------------------------------------ one velocity evaluation
    def _cache_context(self, name: str):
        """diffusers' cache context for one transformer call; it does nothing unless a cache is enabled."""
        context = getattr(self.transformer, "cache_context", None)
        return context(name) if context is not None else contextlib.nullcontext()

    def predict_velocity(
        self,
        latents: torch.Tensor,
        lq_latents: torch.Tensor,
        timestep: torch.Tensor,
        prompt_embeds: torch.Tensor,
        pooled_prompt_embeds: torch.Tensor,
        txt_ids: torch.Tensor,
        guidance: torch.Tensor | None,
        token_height: int,
        token_width: int,
        conditioning_scale: float = 1.0,
        tile_tokens: int | None = None,
        overlap_tokens: int = 0,
        cache_name: str = "cond",
    ) -> torch.Tensor:
        r"""
        The controlled transformer's velocity for packed `latents` `(B, N, 64)` at flow time `timestep` `(B,)`.

        With `tile_tokens` smaller than the token grid, the prediction runs on overlapping tiles (each tile seen as
        a whole image, with its own RoPE ids) and is blended (see [`fluxir_hub.tiling.tiled_map`]). Every transformer
        call runs in diffusers' cache context `cache_name` (one per tile), so caches enabled with
        `pipe.transformer.enable_cache(...)` compare each call only with the same call of the previous step.
        """
        batch, _, channels = latents.shape

        def run(z: torch.Tensor, lq: torch.Tensor, th: int, tw: int, cache_name: str = cache_name) -> torch.Tensor:
            ids = image_ids(th, tw, device=z.device, dtype=z.dtype)
            base_kwargs = {
                "hidden_states": z,
                "encoder_hidden_states": prompt_embeds,
                "pooled_projections": pooled_prompt_embeds,
                "timestep": timestep,
                "img_ids": ids,
                "txt_ids": txt_ids,
                "guidance": guidance,
                "joint_attention_kwargs": self.joint_attention_kwargs,
                "return_dict": False,
            }
            if conditioning_scale == 0:  # zero control: the plain base model, exactly
                with self._cache_context(cache_name):
                    return self.transformer(**base_kwargs)[0]
            # The conditioning component (FluxIR adapter, UMMF, DRA adapter) says how the LQ enters the base call.
            kwargs, finish = self.adapter.prepare_base_call(base_kwargs, lq, conditioning_scale)
            with self._cache_context(cache_name):
                out = self.transformer(**kwargs)[0]
            return finish(out) if finish is not None else out

        if tile_tokens is None or (tile_tokens >= token_height and tile_tokens >= token_width):
            return run(latents, lq_latents, token_height, token_width)

        grid = torch.cat([latents, lq_latents.to(latents.dtype)], dim=-1).view(batch, token_height, token_width, -1)

        tile_numbers = itertools.count()

        def run_tile(tile: torch.Tensor, th: int, tw: int) -> torch.Tensor:
            z, lq = tile.reshape(batch, th * tw, 2 * channels).split(channels, dim=-1)
            return run(z, lq, th, tw, f"{cache_name}/tile-{next(tile_numbers)}").view(batch, th, tw, channels)

        return tiled_map(run_tile, grid, tile_tokens, overlap_tokens).reshape(batch, -1, channels)

    # ------------------------------------------------------------------ test-time scaling
    def _decode_for_reward(self, latents: torch.Tensor, width: int, height: int, scale: float) -> torch.Tensor:
        """Packed latents -> images in [0, 1], decoded at `scale` of the output size (latent downsampled first)."""
        latents = unpack_latents(latents, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if scale < 1:
            size = [max(2, round(side * scale)) for side in latents.shape[-2:]]
            latents = torch.nn.functional.interpolate(latents, size=size, mode="area")
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
        return ((image.float() + 1) / 2).clamp(0, 1)

    def task_prompt(
        self, task: str | None, prompt: str | list[str] = "", upscale: float | None = None
    ) -> tuple[str | list[str], float]:
        """
        The prompt and scale factor for `task`: the adapter's prompt for the task after the caller's prompt (an
        all-in-one adapter), and `upscale` defaulted to 4 for super-resolution, 1 for the other tasks.

        Raises:
            ValueError: an unknown task, or one the adapter was not trained for.
        """
        if upscale is None:
            upscale = 4 if task is None or get_task(task).resizes else 1
        known = self.adapter.config.get("task_prompts") if self.adapter is not None else None
        if isinstance(prompt, str):
            return resolve_task_prompt(known, task, prompt), upscale
        return [resolve_task_prompt(known, task, p) for p in prompt], upscale

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image: PipelineImage,
        prompt: str | list[str] = "",
        prompt_2: str | list[str] | None = None,
        task: str | None = None,
        captioner: Callable[[PIL.Image.Image], str] | None = None,
        upscale: float | None = None,
        num_inference_steps: int | None = None,
        sigmas: list[float] | None = None,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        conditioning_scale: float = 1.0,
        restoration_weight: float | None = None,
        restoration_threshold: float = DEFAULT_RESTORATION_THRESHOLD,
        restoration_schedule: str = "step",
        color_fix: str | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        max_sequence_length: int | None = None,
        tts: TTSConfig | None = None,
    ) -> FluxIRPipelineOutput | tuple:
        r"""
        Restore `image`.

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                Low-quality image(s) of one size. PIL images of any mode are converted to upright RGB (EXIF
                orientation applied, transparency on white, 16-bit rescaled); `uint8` arrays are read as 8-bit images;
                other arrays and tensors are in [0, 1].
            prompt (`str` or `list[str]`, *optional*, defaults to `""`):
                Text that steers the restoration; empty is the paper's default.
            prompt_2 (`str` or `list[str]`, *optional*): A different prompt for T5.
            task (`str`, *optional*):
                The restoration task (`sr`, `motion_blur`, `low_light`, `underwater`, `denoise`, `raindrop`,
                `desnow`; see `fluxir_hub.degradations.TASKS`). With an all-in-one adapter (its config has
                `task_prompts`) it adds the task's prompt after `prompt`. A super-resolution adapter accepts `sr` only.
            captioner (`Callable`, *optional*):
                Any `image -> text` callable (e.g. a vision-language model you have) used to caption each input when
                no prompt is given; the caption then steers the restoration. Off by default; nothing is downloaded.
            upscale (`float`, *optional*):
                Scale factor from 1 to 8; defaults to 4 for super-resolution and 1 for the other tasks. Each output
                side is `input side * upscale` rounded to the nearest multiple of 16 (at least 16); see
                [`output_size`].
            num_inference_steps (`int`, *optional*):
                Denoising steps. Defaults to the adapter's distilled schedule when it has one (a few-step adapter from
                `fluxir-train --stage distill`), else 20 (paper 001). Another count on a distilled adapter runs the
                uniform schedule, which the student was not trained for (a warning says so).
            sigmas (`list[float]`, *optional*):
                Custom decreasing noise levels in (0, 1], one per step (as in diffusers' FLUX pipelines; FLUX's
                resolution shift is applied to them); overrides `num_inference_steps`.
            guidance_scale (`float`, *optional*, defaults to 3.5): FLUX.1-dev's distilled guidance.
            conditioning_scale (`float`, *optional*, defaults to 1.0): Multiplies every adapter residual.
            restoration_weight (`float`, *optional*):
                Fidelity knob `w` of paper 004's restoration sampling strategy; 0 turns it off. Defaults to 0.05, and
                to 0 for tasks that change colours (`low_light`, `underwater`, `desnow`: the LQ's colours are wrong).
            restoration_threshold (`float`, *optional*, defaults to 0.8):
                Clock value `a` above which the strategy acts (paper 004 Eq. 2).
            restoration_schedule (`str`, *optional*, defaults to `"step"`):
                The strategy's clock: `"step"`, the fraction of steps still to go (paper 004's t/T: acts on the first
                20 % of the steps), or `"sigma"`, the shifted flow time (acts on more steps at high resolution); see
                [`fluxir_hub.sampling`].
            color_fix (`str`, *optional*): `"wavelet"`, `"adain"` or `"none"`. Defaults to `"wavelet"`, and to `"none"`
                for tasks that change colours (it would copy the LQ's colours back).
            tile_size (`int` or `"auto"`, *optional*):
                Restore in overlapping latent tiles of this many output pixels (a multiple of 16) when the output is
                larger; `None` restores in one pass; `"auto"` tiles only when one pass would not fit in the free memory
                of the execution device (see [`fluxir_hub.tiling.auto_tile_size`]). Pair with
                `pipe.vae.enable_tiling()` for large images.
            tile_overlap (`int`, *optional*): Overlap of neighbouring tiles in output pixels; defaults to a quarter
                of `tile_size` (rounded down to a multiple of 16).
            max_output_pixels (`int`, *optional*, defaults to 4096*4096): Refuse larger outputs; `None` disables.
            num_images_per_prompt (`int`, *optional*, defaults to 1):
                Restorations per input image (different noise each); the output holds them input by input.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): For reproducible noise (a list: one
                per output image).
            latents (`torch.Tensor` of shape `(batch_size, N, 64)`, *optional*): Packed starting noise.
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed T5 embeddings.
            pooled_prompt_embeds (`torch.Tensor`, *optional*): Precomputed pooled CLIP embeddings.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (packed).
            return_dict (`bool`, *optional*, defaults to `True`): Return a [`FluxIRPipelineOutput`] or a tuple.
            joint_attention_kwargs (`dict`, *optional*): Passed to the attention processors (e.g. LoRA `scale`).
            callback_on_step_end (`Callable`, *optional*):
                Called after every step as `callback_on_step_end(self, step, timestep, callback_kwargs)`; may return
                replacements for the tensors in `callback_kwargs`. During a beam search (`tts.beam_width > 1`)
                `latents` holds every survivor, `(B * M, N, C)` image-major.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*, defaults to `["latents"]`):
                Tensors passed in `callback_kwargs`; any of `self._callback_tensor_inputs`.
            max_sequence_length (`int`, *optional*): T5 token length; defaults to the adapter's (512 for FLUX.1).
            tts ([`~fluxir_hub.tts.TTSConfig`], *optional*):
                Reward-guided test-time scaling (paper 003): greedy or beam search, one verifier or a rank ensemble;
                off by default. The output's `nfe` counts its extra transformer evaluations (formula in
                [`fluxir_hub.tts`]) and `tts_rewards` each round's best combined score.

        Examples:

        Returns:
            [`FluxIRPipelineOutput`] or `tuple(images, nfe)`.
        """
        prompt = "" if prompt is None else prompt  # no prompt, as the empty default
        _check_argument_types(prompt, upscale, num_inference_steps, tile_size, tile_overlap, callback_on_step_end)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]

        # 1. Resolve the call's defaults (task, distilled schedule, captioner, tiles), then check every input.
        plan = self.resolve_call(
            image,
            prompt,
            task,
            captioner,
            upscale,
            num_inference_steps,
            sigmas,
            restoration_weight,
            color_fix,
            tile_size,
            tile_overlap,
            num_images_per_prompt,
            max_sequence_length,
            prompt_embeds,
        )
        self.check_inputs(
            plan.images,
            plan.prompt,
            plan.upscale,
            plan.num_inference_steps,
            guidance_scale,
            conditioning_scale,
            plan.restoration_weight,
            restoration_threshold,
            plan.color_fix,
            plan.tile_size,
            plan.tile_overlap,
            output_type,
            max_output_pixels,
            plan.max_sequence_length,
            prompt_embeds,
            pooled_prompt_embeds,
            callback_on_step_end_tensor_inputs,
            plan.sigmas,
            num_images_per_prompt,
            restoration_schedule,
            tts,
        )
        self._guidance_scale = guidance_scale
        self._joint_attention_kwargs = joint_attention_kwargs
        self._interrupt = False

        batch_size = len(plan.images)
        width, height = output_size(*_image_size(plan.images[0]), plan.upscale, self.output_multiple)
        device = self._execution_device
        dtype = self.transformer.dtype
        if device.type == "cpu" and {dtype, self.vae.dtype} & {torch.bfloat16, torch.float16}:
            warnings.warn(
                "Restoring on the CPU in half precision: CPUs have no fast half-precision kernels, so this runs about 100x "
                "slower than float32. Load with `dtype=torch.float32` on a CPU (or move the pipeline to a GPU).",
                stacklevel=2,
            )

        # 2. Prompt embeddings (the adapter's cached ones for the empty prompt and task prompts).
        prompt = plan.prompt
        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt) * (batch_size // len(prompt))
        if isinstance(prompt_2, list) and len(prompt_2) == 1:
            prompt_2 = prompt_2 * batch_size
        prompt_embeds, pooled_prompt_embeds, txt_ids = self.encode_prompt(
            prompts, prompt_2, device, prompt_embeds, pooled_prompt_embeds, plan.max_sequence_length
        )
        if prompt_embeds.shape[0] == 1 and batch_size > 1:
            prompt_embeds = prompt_embeds.expand(batch_size, -1, -1)
            pooled_prompt_embeds = pooled_prompt_embeds.expand(batch_size, -1)

        # 3. LQ resized to the output size and encoded; starting noise (a student's LQ-mixed start, if it has one).
        lq_pixels, lq_latents = self.prepare_lq(plan.images, width, height, device, dtype)
        start_lq_weight = plan.start_lq_weight if latents is None else 0.0
        latents = self.prepare_latents(batch_size, width, height, dtype, device, generator, latents)
        if start_lq_weight:
            latents = (1 - start_lq_weight) * latents + start_lq_weight * lq_latents
        token_height, token_width = height // (self.vae_scale_factor * 2), width // (self.vae_scale_factor * 2)

        # 4. Timesteps with FLUX's resolution-dependent shift (for tiles, the tile's token count sets the shift).
        tile_tokens = None if plan.tile_size is None else plan.tile_size // (self.vae_scale_factor * 2)
        seq_len = (
            token_height * token_width
            if tile_tokens is None
            else (min(token_height, tile_tokens) * min(token_width, tile_tokens))
        )
        mu = resolution_shift(seq_len, self.scheduler.config)
        # A scheduler of this call's own: its timesteps and step index are per-call state, and the pipeline's shared
        # scheduler would let concurrent calls step with each other's noise levels.
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        timesteps, num_inference_steps = retrieve_timesteps(
            scheduler, plan.num_inference_steps, device, sigmas=plan.sigmas, mu=mu
        )
        self._num_timesteps = len(timesteps)
        guidance = (
            torch.full((batch_size,), guidance_scale, device=device, dtype=torch.float32)
            if self.transformer.config.guidance_embeds
            else None
        )

        # 5. Denoising loop; the test-time search (if any) branches at its steps and may carry a beam of survivors.
        conditioning = {
            "lq_latents": lq_latents,
            "prompt_embeds": prompt_embeds,
            "pooled_prompt_embeds": pooled_prompt_embeds,
            "txt_ids": txt_ids,
            "guidance": guidance,
            "token_height": token_height,
            "token_width": token_width,
            "conditioning_scale": conditioning_scale,
            "tile_tokens": tile_tokens,
            "overlap_tokens": plan.tile_overlap // (self.vae_scale_factor * 2),
        }

        def for_batch(rows: int) -> dict[str, Any]:  # the conditioning repeated for a beam's survivors
            return conditioning if rows == batch_size else _repeat_batch(conditioning, rows // batch_size)

        def guide(z: torch.Tensor, clock: float) -> torch.Tensor:  # paper 004 Eq. 1-2, g on this step's clock
            lq = for_batch(z.shape[0])["lq_latents"]
            return apply_restoration_guidance(z, lq, clock, plan.restoration_weight, restoration_threshold)

        def predict(z: torch.Tensor, times: torch.Tensor, name: str) -> torch.Tensor:
            return self.predict_velocity(z, timestep=times, cache_name=name, **for_batch(z.shape[0]))

        search = (
            TestTimeSearch(
                tts,
                num_inference_steps,
                lq_pixels,
                predict,
                guide=guide,
                generator=generator,
                decode=lambda z, scale: self._decode_for_reward(z, width, height, scale),
            )
            if tts
            else None
        )
        sigmas = scheduler.sigmas.tolist()
        clock = restoration_clock(sigmas, num_inference_steps, restoration_schedule)
        scheduler.set_begin_index(0)
        self.adapter.install(self.transformer)  # no-op unless the adapter component was replaced since construction
        nfe = 0
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                velocity = predict(latents, t.expand(latents.shape[0]).to(dtype) / 1000, "cond")
                nfe += latents.shape[0] // batch_size
                if search is not None:
                    latents, velocity = search.step(latents, velocity, i, sigmas, clock[i])
                latents = guide(scheduler.step(velocity, t, latents, return_dict=False)[0].to(dtype), clock[i])

                if callback_on_step_end is not None:
                    step_tensors = {"latents": latents, "lq_latents": lq_latents, "prompt_embeds": prompt_embeds}
                    callback_kwargs = {k: step_tensors[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    if not isinstance(callback_outputs, dict):
                        raise TypeError(
                            "`callback_on_step_end` must return a dict of the tensors it replaces (return "
                            f"`callback_kwargs` to change nothing), got {type(callback_outputs).__name__}."
                        )
                    latents = callback_outputs.pop("latents", latents)
                    lq_latents = callback_outputs.pop("lq_latents", lq_latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    conditioning.update(lq_latents=lq_latents, prompt_embeds=prompt_embeds)
                progress_bar.update()

        # 6. Decode (a beam's best survivor first), colour fix, post-process.
        if search is not None:
            latents, nfe = search.finish(latents), nfe + search.nfe
        if output_type == "latent":
            result = latents
        else:
            decoded = self.decode_latents(latents, width, height).float()
            decoded = apply_color_fix(decoded, lq_pixels.float(), plan.color_fix).clamp(-1, 1)
            result = self.image_processor.postprocess(decoded, output_type=output_type)

        self.maybe_free_model_hooks()
        tts_rewards = search.rewards if search is not None else None
        if not return_dict:
            return (result, nfe)
        return FluxIRPipelineOutput(images=result, nfe=nfe, tts_rewards=tts_rewards)
