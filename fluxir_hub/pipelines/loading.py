"""Loading FLUX.1 with a trained conditioning component: one function for `fluxir-restore`, the Space and users."""

from __future__ import annotations

import os

import torch

TEXT_COMPONENTS = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")


def load_restoration_pipeline(
    base_model: str | os.PathLike,
    adapter: str | os.PathLike,
    *,
    prompt: str | None = "",
    task: str | None = None,
    base_revision: str | None = None,
    adapter_revision: str | None = None,
    dtype: torch.dtype = torch.bfloat16,
    **kwargs,
):
    r"""
    A [`FluxIRPipeline`] of the FLUX.1 base `base_model` conditioned by the component in `adapter` (a FluxIR adapter,
    UMMF, a DRA adapter or any registered kind: the folder's config says which).

    The text encoders (T5 alone is 9 GB) are loaded only when a call may need them: not when every prompt the calls
    will use is cached in the component (the empty prompt, and an all-in-one component's task prompts).

    Args:
        base_model (`str` or `os.PathLike`): Hub id or folder of the base pipeline (e.g. `black-forest-labs/FLUX.1-dev`).
        adapter (`str` or `os.PathLike`): Hub id or folder of the conditioning component.
        prompt (`str`, *optional*, defaults to `""`): The prompt the calls will use; `None` when any prompt may come
            (a text box), which always loads the text encoders.
        task (`str`, *optional*): The restoration task the calls will ask for (an all-in-one component).
        base_revision, adapter_revision (`str`, *optional*): Revisions of the two repos.
        dtype (`torch.dtype`, defaults to `torch.bfloat16`): Weights' dtype.
        kwargs: Passed to [`FluxIRPipeline.from_pretrained`] (`cache_dir`, `token`, ...).

    Raises:
        ValueError: `adapter` is not a conditioning component, it was made for another base, or it lacks `task`.
    """
    from ..models.conditioning import load_conditioning_component
    from .pipeline_fluxir import FluxIRPipeline, resolve_task_prompt

    component = load_conditioning_component(adapter, revision=adapter_revision, dtype=dtype)
    needed = None if prompt is None else resolve_task_prompt(component.config.get("task_prompts"), task, prompt)
    if needed is not None and needed in component.cached_prompts:
        kwargs.update(dict.fromkeys(TEXT_COMPONENTS))  # `None` components: not loaded at all
    pipe = FluxIRPipeline.from_pretrained(base_model, adapter=None, revision=base_revision, dtype=dtype, **kwargs)
    pipe.load_conditioning(adapter, component=component)
    return pipe
