"""One call of [`FluxIRPipeline`] resolved: the plan its defaults resolve to, and the type checks of its arguments."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from diffusers.utils import logging

from ..image_io import as_image_list, image_size, normalise_image, tensor_to_pil
from ..restoration_guidance import DEFAULT_RESTORATION_WEIGHT
from ..tasks import get_task

logger = logging.get_logger(__name__)

MAX_UPSCALE = 8
OUTPUT_MULTIPLE = 16  # FLUX's VAE factor 8 x 2x2 token packing; a pipeline uses its own VAE's factor x 2
DEFAULT_NUM_INFERENCE_STEPS = 20


def output_size(width: int, height: int, upscale: float, multiple: int = OUTPUT_MULTIPLE) -> tuple[int, int]:
    """
    Output `(width, height)` for an input of `width x height` pixels: each side times `upscale`, rounded to the
    nearest multiple of `multiple` (halves round up; the VAE and 2x2 packing need multiples of its factor x 2: 16 for
    FLUX.1), and at least `multiple`.
    """
    return tuple(max(multiple, math.floor(side * upscale / multiple + 0.5) * multiple) for side in (width, height))


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


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_argument_types(
    *, prompt, upscale, num_inference_steps, tile_size, tile_overlap, callback_on_step_end
) -> None:
    """Refuse arguments of the wrong type by name, before anything uses them (a `bool` is not a number here)."""
    if not (
        isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt))
    ):
        raise TypeError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
    if upscale is not None and not is_number(upscale):
        raise TypeError(f"`upscale` must be a number from 1 to {MAX_UPSCALE}, got {upscale!r}.")
    if num_inference_steps is not None and not is_int(num_inference_steps):
        raise TypeError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
    if tile_size is not None and tile_size != "auto" and not is_int(tile_size):
        raise TypeError(f"`tile_size` must be an integer number of output pixels, 'auto' or None, got {tile_size!r}.")
    if tile_overlap is not None and not is_int(tile_overlap):
        raise TypeError(f"`tile_overlap` must be an integer number of output pixels, got {tile_overlap!r}.")
    if callback_on_step_end is not None and not callable(callback_on_step_end):
        raise TypeError(f"`callback_on_step_end` must be callable, got {type(callback_on_step_end).__name__}.")


def resolve_call(
    pipe,
    *,
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
    """Every default of one call of `pipe` ([`FluxIRPipeline`]) resolved, in one place: the task's prompt, size and
    fidelity settings, the captioner's prompt, the adapter's distilled schedule (and start), the T5 length, automatic
    tiles. The arguments are `__call__`'s; [`FluxIRPipeline.check_inputs`] checks the result."""
    prompt, upscale = pipe.task_prompt(task, prompt, upscale)
    spec = get_task(task) if task is not None else None
    # The adapter's own defaults (chosen on validation data for it), after the task's and before FLUX.1's.
    own = (pipe.adapter.config.get("sampling_defaults") if pipe.adapter is not None else None) or {}
    if color_fix is None:
        color_fix = spec.color_fix if spec and not spec.keeps_colors else own.get("color_fix", "wavelet")
    if restoration_weight is None:
        weight = spec.restoration_weight if spec else None
        restoration_weight = own.get("restoration_weight", DEFAULT_RESTORATION_WEIGHT) if weight is None else weight
    # Upright RGB first: EXIF rotation changes the size the checks and the output are based on.
    images = [normalise_image(im) for im in as_image_list(image)]
    if captioner is not None and prompt_embeds is None and (prompt == "" or prompt == [""] * len(images)):
        captions = [str(captioner(tensor_to_pil(im))) for im in images]
        prompt, _ = pipe.task_prompt(task, captions if len(captions) > 1 else captions[0], upscale)
    start_lq_weight = 0.0  # a student distilled from an LQ-mixed start begins there on its own schedule
    distilled = pipe.adapter.config.get("distilled_sigmas") if pipe.adapter is not None else None
    if sigmas is not None:
        sigmas = [float(x) for x in sigmas]
        num_inference_steps = len(sigmas)
    elif num_inference_steps is None and distilled:
        sigmas, num_inference_steps = [float(x) for x in distilled], len(distilled)
        start_lq_weight = float(pipe.adapter.config.get("distilled_start_lq_weight") or 0.0)
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
        max_sequence_length = pipe.default_max_sequence_length
    if tile_size == "auto":
        width, height = output_size(*image_size(images[0]), upscale, pipe.output_multiple) if images else (0, 0)
        tile_size = pipe.auto_tile_size(width, height, max_sequence_length)
    if tile_overlap is None:
        tile_overlap = (tile_size or 0) // 4 // pipe.output_multiple * pipe.output_multiple
    if prompt_embeds is not None:
        prompt = [""] * prompt_embeds.shape[0]
    return CallPlan(
        images=images,
        prompt=prompt,
        upscale=upscale,
        num_inference_steps=num_inference_steps,
        sigmas=sigmas,
        start_lq_weight=start_lq_weight,
        restoration_weight=restoration_weight,
        color_fix=color_fix,
        max_sequence_length=max_sequence_length,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
    )
