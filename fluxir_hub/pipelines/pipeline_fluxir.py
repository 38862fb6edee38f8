# Copyright 2026 The FluxIR Hub authors. Licensed under the Apache License, Version 2.0.
"""FluxIRPipeline: real-world image restoration with FLUX.1 steered by a FluxIR adapter."""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable
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
from ..image_io import image_size
from ..latents import image_ids, pack_latents, unpack_latents
from ..models.adapter_fluxir import FluxIRAdapter
from ..restoration_guidance import (
    DEFAULT_RESTORATION_THRESHOLD,
    RESTORATION_SCHEDULES,
    apply_restoration_guidance,
    restoration_clock,
)
from ..schedules import resolution_shift
from ..tasks import get_task, resolve_task_prompt
from ..tiling import tiled_map
from ..tts import TestTimeSearch, TTSConfig, repeat_batch
from .call_plan import (  # noqa: F401 (DEFAULT_NUM_INFERENCE_STEPS: re-exported)
    DEFAULT_NUM_INFERENCE_STEPS,
    MAX_UPSCALE,
    check_argument_types,
    output_size,
    resolve_call,
)
from .hub_loading import ConditioningPipelineHubMixin
from .pipeline_output import FluxIRPipelineOutput
from .prompt_encoding import CachedPromptEncodingMixin

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
DEFAULT_MAX_OUTPUT_PIXELS = 4096 * 4096
DEFAULT_GUIDANCE_SCALE = 3.5
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


class FluxIRPipeline(ConditioningPipelineHubMixin, CachedPromptEncodingMixin, DiffusionPipeline, FluxLoraLoaderMixin):
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

    # ------------------------------------------------------------------ checking a call
    def check_inputs(
        self,
        *,
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
        sizes = {image_size(image) for image in images}
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
                [`fluxir_hub.restoration_guidance`].
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
        check_argument_types(
            prompt=prompt,
            upscale=upscale,
            num_inference_steps=num_inference_steps,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            callback_on_step_end=callback_on_step_end,
        )
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]

        # 1. Resolve the call's defaults (task, distilled schedule, captioner, tiles), then check every input.
        plan = resolve_call(
            self,
            image=image,
            prompt=prompt,
            task=task,
            captioner=captioner,
            upscale=upscale,
            num_inference_steps=num_inference_steps,
            sigmas=sigmas,
            restoration_weight=restoration_weight,
            color_fix=color_fix,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=max_sequence_length,
            prompt_embeds=prompt_embeds,
        )
        self.check_inputs(
            images=plan.images,
            prompt=plan.prompt,
            upscale=plan.upscale,
            num_inference_steps=plan.num_inference_steps,
            guidance_scale=guidance_scale,
            conditioning_scale=conditioning_scale,
            restoration_weight=plan.restoration_weight,
            restoration_threshold=restoration_threshold,
            color_fix=plan.color_fix,
            tile_size=plan.tile_size,
            tile_overlap=plan.tile_overlap,
            output_type=output_type,
            max_output_pixels=max_output_pixels,
            max_sequence_length=plan.max_sequence_length,
            prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            sigmas=plan.sigmas,
            num_images_per_prompt=num_images_per_prompt,
            restoration_schedule=restoration_schedule,
            tts=tts,
        )
        self._guidance_scale = guidance_scale
        self._joint_attention_kwargs = joint_attention_kwargs
        self._interrupt = False

        batch_size = len(plan.images)
        width, height = output_size(*image_size(plan.images[0]), plan.upscale, self.output_multiple)
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
            return conditioning if rows == batch_size else repeat_batch(conditioning, rows // batch_size)

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
