"""The adapter's control, installed once on the base blocks: diffusers' block caches and torch.compile work with it."""

import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

from fluxir_hub.testing import tiny_pipeline

from .helpers import gen, photo


def _velocity_twice(pipe):
    """Two calls with identical inputs in one cache context, as two steps of a still trajectory would be."""
    lq = photo(size=(16, 16))
    pixels, lq_latents = pipe.prepare_lq([lq], 32, 32, torch.device("cpu"), torch.float32)
    latents = pipe.prepare_latents(1, 32, 32, torch.float32, torch.device("cpu"), gen(0))
    prompt_embeds, pooled, txt_ids = pipe.encode_prompt([""], device=torch.device("cpu"), max_sequence_length=32)
    kwargs = {"lq_latents": lq_latents, "prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled,
              "txt_ids": txt_ids, "guidance": torch.full((1,), 3.5), "token_height": 2, "token_width": 2}  # fmt: skip
    pipe._joint_attention_kwargs = None
    t = torch.full((1,), 0.7)
    return [pipe.predict_velocity(latents, timestep=t, **kwargs) for _ in range(3)]


@pytest.mark.parametrize(
    "config",
    [
        FirstBlockCacheConfig(threshold=0.5),
        TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=1, taylor_factors_dtype=torch.float32),
        MagCacheConfig(threshold=1.0, num_inference_steps=3, retention_ratio=0.0, mag_ratios=[1.0, 1.0, 1.0]),
    ],
    ids=["first-block", "taylorseer", "mag"],
)
def test_block_caches_give_exact_results_on_repeated_inputs(config):
    pipe = tiny_pipeline()
    uncached = _velocity_twice(pipe)[0]
    pipe.transformer.enable_cache(config)
    try:
        first, second, third = _velocity_twice(pipe)
    finally:
        pipe.transformer.disable_cache()
    # Identical inputs: a replayed (cached) step must reproduce the computed one, control residuals included once.
    for cached in (first, second, third):
        torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-5)


def test_cache_is_switched_on_from_the_pipeline_and_runs_the_loop():
    pipe = tiny_pipeline()
    plain = pipe(photo(size=(16, 16)), upscale=2, num_inference_steps=4, generator=gen(), output_type="pt").images
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.0))  # threshold 0: never skips
    cached = pipe(photo(size=(16, 16)), upscale=2, num_inference_steps=4, generator=gen(), output_type="pt").images
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-5)
    pipe.transformer.disable_cache()
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=10.0))  # skips after the first step
    skipping = pipe(photo(size=(16, 16)), upscale=2, num_inference_steps=4, generator=gen(), output_type="pt").images
    assert skipping.shape == plain.shape and torch.isfinite(skipping).all()


def test_enabling_a_cache_before_the_control_is_refused():
    from fluxir_hub import FluxIRAdapter

    pipe = tiny_pipeline()
    FluxIRAdapter.uninstall(pipe.transformer)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.5))
    with pytest.raises(ValueError, match="install the conditioning first"):
        pipe.adapter.install(pipe.transformer)


@pytest.mark.parametrize("regional", [True, False], ids=["regional", "whole-model"])
def test_compiled_transformer_does_not_recompile_per_step(regional):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    pipe = tiny_pipeline()
    if regional:
        pipe.transformer.compile_repeated_blocks(backend="eager", fullgraph=True)
    else:
        pipe.transformer.compile(backend="eager", fullgraph=True)
    eager = tiny_pipeline()
    lq = photo(size=(16, 16))
    pipe(lq, upscale=2, num_inference_steps=2, generator=gen())  # warm-up: first step and one later step
    counters.clear()
    out = pipe(lq, upscale=2, num_inference_steps=6, generator=gen(), output_type="pt").images
    assert counters["stats"]["unique_graphs"] == 0, dict(counters["stats"])  # no step compiled anything new
    reference = eager(lq, upscale=2, num_inference_steps=6, generator=gen(), output_type="pt").images
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
