"""Offloading, proven on the CPU as far as accelerate allows (the device moves are no-ops; the hook chain and every
code path that reads weights or places inputs are real). The GPU versions are in test_gpu.py."""

import pytest
import torch

from fluxir_hub.testing import tiny_pipeline

from .helpers import gen, photo

FAST = {"upscale": 2, "num_inference_steps": 2, "output_type": "pt"}


@pytest.fixture(scope="module")
def expected():
    return tiny_pipeline()(photo(size=(16, 16)), generator=gen(), **FAST).images


@pytest.mark.parametrize("with_text_encoders", [True, False], ids=["text-encoders", "no-text-encoders"])
def test_model_offload_never_offloads_the_adapter_mid_call(expected, with_text_encoders):
    pipe = tiny_pipeline()
    if not with_text_encoders:  # the empty prompt is cached in the adapter: T5 and CLIP can be dropped
        pipe.text_encoder = pipe.text_encoder_2 = pipe.tokenizer = pipe.tokenizer_2 = None
    pipe.enable_model_cpu_offload(device="cpu")
    hooks = {hook.model: hook.hook for hook in pipe._all_hooks}
    adapter_hook = hooks[pipe.adapter]
    # No model's hook offloads the adapter when that model starts (the chain's `prev_module_hook`).
    assert all(getattr(hook, "prev_module_hook", None) is not adapter_hook for hook in hooks.values())
    out = pipe(photo(size=(16, 16)), generator=gen(), **FAST).images
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_sequential_offload_reads_the_cached_empty_prompt():
    # A full sequential-offload run on the CPU trips over accelerate's re-offloading with this torch (diffusers'
    # own FluxPipeline fails the same way); the run itself is in test_gpu.py. The adapter's part is checked here.
    pipe = tiny_pipeline()
    cached, pooled = (t.clone() for t in pipe.adapter.get_empty_prompt_embeds())
    pipe.enable_sequential_cpu_offload(device="cpu")
    assert pipe.adapter.empty_prompt_embeds.device.type == "meta"  # held by accelerate until forward
    assert pipe.adapter.has_empty_prompt_embeds
    embeds, pooled_embeds, _ = pipe.encode_prompt("", device=torch.device("cpu"))
    torch.testing.assert_close(embeds[0], cached)
    torch.testing.assert_close(pooled_embeds[0], pooled)


def test_group_offload_and_fp8_storage_run(expected):
    pipe = tiny_pipeline()
    pipe.enable_group_offload("cpu", offload_type="block_level", num_blocks_per_group=1)
    out = pipe(photo(size=(16, 16)), generator=gen(), **FAST).images
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    pipe = tiny_pipeline()
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    out = pipe(photo(size=(16, 16)), generator=gen(), **FAST).images
    assert out.shape == expected.shape and (out - expected).abs().mean() < 0.05  # fp8 weight rounding only


def test_encode_prompt_works_without_an_adapter_and_defaults_like_call():
    from fluxir_hub import FluxIRPipeline
    from fluxir_hub.testing import tiny_components

    components = tiny_components()
    encoders_only = FluxIRPipeline(
        scheduler=components["scheduler"], vae=None, text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"], text_encoder_2=components["text_encoder_2"],
        tokenizer_2=components["tokenizer_2"], transformer=None, adapter=None,
    )  # fmt: skip
    embeds, pooled, ids = encoders_only.encode_prompt("a cat")
    assert embeds.shape == (1, 32, 32) and pooled.shape == (1, 32) and ids.shape == (32, 3)
    full = tiny_pipeline()
    assert full.default_max_sequence_length == full.adapter.config.max_sequence_length
    assert full.encode_prompt("a cat")[0].shape[1] == full.default_max_sequence_length


def test_adapter_output_survives_accelerates_device_moves():
    # Sequential offload's hooks send every output back as `type(output)({...})`: a dataclass with required fields
    # broke there on the GPU ("missing 1 required positional argument: 'text_features'").
    from accelerate.utils import send_to_device

    from fluxir_hub.models.adapter_fluxir import FluxIRAdapterOutput

    output = FluxIRAdapterOutput(image_features=torch.ones(1, 2, 3), text_features=torch.zeros(1, 4, 3))
    moved = send_to_device(output, torch.device("cpu"))
    assert isinstance(moved, FluxIRAdapterOutput)
    torch.testing.assert_close(moved.image_features, output.image_features)
    torch.testing.assert_close(moved.text_features, output.text_features)
