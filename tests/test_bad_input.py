"""Odd files, odd modes and bad parameters give clear errors (or correct results), never a deep traceback."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fluxir_hub.image_io import ImageLoadError, load_image, to_rgb

from .helpers import gen, photo

FAST = {"num_inference_steps": 1, "upscale": 2}


def test_non_image_empty_and_truncated_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    buf = io.BytesIO()
    photo(size=(64, 64)).save(buf, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    with pytest.raises(ImageLoadError, match="notes.png: not a readable image"):
        load_image(text)
    with pytest.raises(ImageLoadError, match="empty.jpg: the file is empty"):
        load_image(empty)
    with pytest.raises(ImageLoadError, match="cut.jpg: the image data is damaged or truncated"):
        load_image(truncated)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_modes_convert_to_rgb_sensibly():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> white
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (10, 255))
    assert to_rgb(la).getpixel((0, 0)) == (10, 10, 10)
    p = Image.new("P", (4, 4))
    p.putpalette([0, 200, 0] * 256)
    assert to_rgb(p).getpixel((0, 0)) == (0, 200, 0)
    sixteen = Image.fromarray(np.full((4, 4), 128 * 257, dtype=np.uint16)).convert("I;16")
    assert to_rgb(sixteen).getpixel((0, 0)) == (128, 128, 128)  # rescaled, not clipped to 255
    gray = Image.new("L", (4, 4), 77)
    assert to_rgb(gray).getpixel((0, 0)) == (77, 77, 77)


def test_cmyk_jpeg_and_exif_rotation(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    photo(size=(40, 20)).convert("CMYK").save(cmyk)
    image = load_image(cmyk)
    assert image.mode == "RGB" and image.size == (40, 20)

    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    photo(size=(40, 20)).save(rotated, exif=exif)
    assert load_image(rotated).size == (20, 40)


def test_modes_through_the_pipeline(tiny_pipe, tmp_path):
    base = photo(size=(16, 24))
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "rot.jpg"
    base.save(path, exif=exif)
    with Image.open(path) as opened:  # EXIF applied inside the pipeline too
        out = tiny_pipe(opened, generator=gen(), **FAST).images[0]
    assert out.size == (48, 32)  # upright: 24x16 input, x2
    for image in [base.convert("RGBA"), base.convert("LA"), base.convert("P"), base.convert("L"),
                  Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).convert("I;16")]:  # fmt: skip
        result = tiny_pipe(image, generator=gen(), **FAST).images[0]
        assert result.size == (32, 48) and result.mode == "RGB", image.mode


def test_tiny_and_huge_images(tiny_pipe):
    with pytest.raises(ValueError, match="1x1 pixels; each side must be at least 8"):
        tiny_pipe(Image.new("RGB", (1, 1)), **FAST)
    assert tiny_pipe(Image.new("RGB", (8, 8), (90, 20, 200)), generator=gen(), **FAST).images[0].size == (16, 16)
    huge = torch.zeros(1, 3, 4000, 6000)  # 6000x4000 at x4 -> 24000x16000
    with pytest.raises(ValueError, match=r"24000x16000 \(384.0 MP\), above `max_output_pixels` \(16.8 MP\)"):
        tiny_pipe(huge, upscale=4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": -3}, "num_inference_steps"),
        ({"upscale": 0}, "upscale"),
        ({"upscale": 9}, "upscale"),
        ({"tile_size": 64, "tile_overlap": 64}, "tile_overlap"),
        ({"tile_size": 50}, "tile_size"),
        ({"color_fix": "histogram"}, "color_fix"),
        ({"output_type": "jpeg"}, "output_type"),
        ({"restoration_weight": 2.0}, "restoration_weight"),
        ({"restoration_threshold": 1.0}, "restoration_threshold"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"conditioning_scale": float("nan")}, "conditioning_scale"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, "callback_on_step_end_tensor_inputs"),
        ({"prompt_embeds": torch.zeros(1, 4, 32)}, "pooled_prompt_embeds"),
    ],
)
def test_bad_parameters_name_the_parameter(tiny_pipe, kwargs, name):
    call = {**FAST, **kwargs}
    with pytest.raises(ValueError, match=name):
        tiny_pipe(photo(size=(32, 32)), **call)


def test_uint8_arrays_and_float_arrays_agree(tiny_pipe):
    base = photo(size=(16, 16))
    as_uint8 = tiny_pipe(np.asarray(base), generator=gen(), output_type="pt", **FAST).images
    as_float = tiny_pipe(np.asarray(base, dtype=np.float32) / 255, generator=gen(), output_type="pt", **FAST).images
    as_pil = tiny_pipe(base, generator=gen(), output_type="pt", **FAST).images
    torch.testing.assert_close(as_uint8, as_pil)
    assert (as_float - as_pil).abs().max() < 0.05  # float arrays are resized by torch, PIL by PIL: close, not equal


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "`image` is required"),
        ([], "`image` is empty"),
        ("photo.png", "must be a PIL image, a numpy array or a torch tensor"),
        (np.ones((16, 16, 3), dtype=bool), "convert it first"),
        (np.zeros((16, 16, 3), dtype=np.int64), "uint8, uint16 or float"),
        (torch.rand(4, 16, 16), "drop the alpha channel"),
        (torch.full((3, 16, 16), float("nan")), "NaN or infinite"),
        (torch.rand(3, 16, 16) * 255, "must be in \\[0, 1\\]"),
        (np.zeros((16, 16, 5), dtype=np.uint8), "must be \\(H, W\\), \\(H, W, 3\\) or \\(H, W, 4\\)"),
    ],
)
def test_wrong_image_types_get_clear_errors(tiny_pipe, image, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipe(image, **FAST)


def test_sixteen_bit_and_greyscale_arrays_are_images(tiny_pipe):
    base = np.asarray(photo(size=(16, 16)))
    as_8 = tiny_pipe(base, generator=gen(), output_type="pt", **FAST).images
    as_16 = tiny_pipe(base.astype(np.uint16) * 257, generator=gen(), output_type="pt", **FAST).images
    torch.testing.assert_close(as_16, as_8)  # 16-bit keeps its full range, not clipped to white
    grey = tiny_pipe(torch.rand(1, 16, 16), generator=gen(), **FAST).images[0]
    assert grey.size == (32, 32)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": float("inf")}, "guidance_scale"),
        ({"max_sequence_length": 0}, "max_sequence_length"),
        ({"max_sequence_length": -5}, "max_sequence_length"),
        ({"upscale": float("nan")}, "upscale"),
        ({"restoration_weight": float("nan")}, "restoration_weight"),
    ],
)
def test_non_finite_and_non_positive_settings_are_refused(tiny_pipe, kwargs, name):
    with pytest.raises(ValueError, match=name):
        tiny_pipe(photo(size=(16, 16)), **{**FAST, **kwargs})


def test_offline_model_and_dataset_lookups_say_how_to_get_them(tmp_path, capsys):
    from dataset_builder.cli import main as fluxgen
    from training.cli import main as train

    # `--mixed_precision no`: accelerate's state is process-wide, and the other tests train in full precision
    argv = ["--dataset", "org/not-cached-pairs", "--output_dir", str(tmp_path / "t"), "--mixed_precision", "no"]
    assert train(argv) == 2
    err = capsys.readouterr().err
    assert "could not load a model or dataset" in err and "HF_HUB_OFFLINE is set" in err and "Traceback" not in err
    assert fluxgen(["generate", "-o", str(tmp_path / "g"), "--model", "org/not-cached-flux", "--seed-end", "1"]) == 2
    err = capsys.readouterr().err
    assert "could not load a model or dataset" in err and "org/not-cached-flux" in err
    from fluxir_hub.evaluation.metrics import MetricUnavailableError, create_pyiqa_metric

    with pytest.raises(MetricUnavailableError, match="not cached on this machine"):
        create_pyiqa_metric("brisque")
