"""GPU checks, skipped by default: `pytest tests/test_gpu.py -m gpu` on a CUDA machine.

They import only torch, diffusers, transformers, accelerate, peft and the project (what `scripts/gpu_bundle.sh` brings
to a GPU machine that lacks the rest).
"""

import pytest
import torch

from fluxir_hub.testing import tiny_pipeline

from .helpers import gen


def photo(size=(32, 32)):
    """A smooth colour pattern (the GPU machines have no scikit-image)."""
    from PIL import Image

    x = torch.linspace(0, 1, size[0])[None, :].expand(size[1], -1)
    y = torch.linspace(0, 1, size[1])[:, None].expand(-1, size[0])
    rgb = torch.stack([x, y, (x * y).sqrt()], dim=-1)
    return Image.fromarray((rgb * 255).round().byte().numpy())


pytestmark = pytest.mark.gpu

FAST = {"upscale": 2, "num_inference_steps": 2, "output_type": "pt"}


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")


def test_float32_on_gpu_matches_cpu(cuda):
    lq = photo(size=(32, 32))
    cpu = tiny_pipeline()(lq, generator=gen(), output_type="pt", num_inference_steps=3, upscale=2).images
    out = tiny_pipeline().to(cuda)(lq, generator=gen(), output_type="pt", num_inference_steps=3, upscale=2).images
    assert out.shape == cpu.shape
    assert (out.cpu() - cpu).abs().max() < 0.02  # TF32 convolutions only (cuDNN's default)


def test_bf16_mini_model_on_gpu_stays_close_to_float32(cuda):
    # Trained weights: random tiny ones amplify bf16 rounding far beyond what a real model does.
    from fluxir_hub.mini import load_mini_pipeline

    lq = photo(size=(64, 64))
    pipe = load_mini_pipeline(device="cuda")
    reference = pipe(lq, generator=gen(), output_type="pt", num_inference_steps=8).images.cpu()
    out = pipe.to(cuda, torch.bfloat16)(lq, generator=gen(), output_type="pt", num_inference_steps=8).images
    assert out.shape == reference.shape == (1, 3, 256, 256)
    # Measured on an H200 (torch 2.11): 0.024 (bf16 on the CPU: 0.0009). Bound for gross breakage, not rounding.
    assert (out.float().cpu() - reference).abs().mean() < 0.05


@pytest.mark.parametrize("with_text_encoders", [True, False], ids=["text-encoders", "no-text-encoders"])
def test_model_cpu_offload_keeps_the_adapter_on_the_gpu_while_the_transformer_runs(cuda, with_text_encoders):
    lq = photo(size=(32, 32))
    expected = tiny_pipeline().to(cuda)(lq, generator=gen(), **FAST).images.cpu()
    pipe = tiny_pipeline()
    if not with_text_encoders:
        pipe.text_encoder = pipe.text_encoder_2 = pipe.tokenizer = pipe.tokenizer_2 = None
    pipe.enable_model_cpu_offload()
    seen = []
    handle = pipe.transformer.transformer_blocks[-1].register_forward_pre_hook(
        lambda module, args: seen.append(pipe.adapter.image_se[0].squeeze.weight.device.type)
    )
    try:
        out = pipe(lq, generator=gen(), **FAST).images
    finally:
        handle.remove()
    assert seen and set(seen) == {"cuda"}  # the SE layers were on the GPU at every transformer call
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=0)
    assert pipe.transformer.device.type == "cpu"  # offloaded again after the call


def test_sequential_and_group_offload_on_gpu(cuda):
    lq = photo(size=(32, 32))
    expected = tiny_pipeline().to(cuda)(lq, generator=gen(), **FAST).images.cpu()
    pipe = tiny_pipeline()
    pipe.enable_sequential_cpu_offload()
    torch.testing.assert_close(pipe(lq, generator=gen(), **FAST).images.cpu(), expected, atol=1e-4, rtol=0)
    pipe = tiny_pipeline()
    pipe.enable_group_offload(cuda, offload_type="block_level", num_blocks_per_group=1, use_stream=True)
    torch.testing.assert_close(pipe(lq, generator=gen(), **FAST).images.cpu(), expected, atol=1e-4, rtol=0)


def test_ema_resumes_on_the_training_device(cuda, tmp_path):
    from diffusers.training_utils import EMAModel

    from training.checkpoint import load_ema, save_state

    params = [torch.nn.Parameter(torch.randn(8, 8, device=cuda)) for _ in range(3)]
    ema = EMAModel(params, decay=0.9)
    ema.step(params)
    save_state(ema.state_dict(), tmp_path, "ema")
    resumed = EMAModel(params, decay=0.9)
    load_ema(resumed, tmp_path, cuda)  # what the trainer does on resume
    assert {p.device.type for p in resumed.shadow_params} == {"cuda"}
    resumed.step(params)  # would fail mixing devices if the shadow weights had stayed on the CPU
    assert resumed.optimization_step == ema.optimization_step + 1
