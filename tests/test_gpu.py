"""GPU checks, skipped by default: `pytest -m gpu` on a CUDA machine."""

import pytest
import torch

from fluxir_hub.testing import tiny_pipeline

from .helpers import gen, photo

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")


def test_bf16_pipeline_on_gpu_matches_cpu(cuda):
    lq = photo(size=(32, 32))
    cpu = tiny_pipeline()(lq, generator=gen(), output_type="pt", num_inference_steps=3, upscale=2).images
    pipe = tiny_pipeline().to(cuda, torch.bfloat16)
    out = pipe(lq, generator=gen(), output_type="pt", num_inference_steps=3, upscale=2).images
    assert out.device.type == "cpu" and out.shape == cpu.shape
    assert (out.float() - cpu).abs().mean() < 0.05  # bf16 rounding only


def test_model_cpu_offload_on_gpu(cuda):
    lq = photo(size=(32, 32))
    expected = tiny_pipeline().to(cuda)(lq, generator=gen(), output_type="pt", num_inference_steps=2, upscale=2).images
    pipe = tiny_pipeline()
    pipe.enable_model_cpu_offload()
    out = pipe(lq, generator=gen(), output_type="pt", num_inference_steps=2, upscale=2).images
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    assert pipe.transformer.device.type == "cpu"  # offloaded again after the call
