import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import FluxPipeline

from fluxir_hub import FluxIRAdapter, FluxIRPipeline, FluxIRPipelineOutput
from fluxir_hub.latents import unpack_latents
from fluxir_hub.pipelines import output_size
from fluxir_hub.testing import make_hub_cache, tiny_adapter, tiny_components, tiny_pipeline

from .helpers import gen, photo

FAST = {"num_inference_steps": 2, "upscale": 2}


def test_output_size_rounding():
    assert output_size(32, 24, 2) == (64, 48)
    assert output_size(20, 30, 4) == (80, 128)  # 120 -> nearest multiple of 16, halves up
    assert output_size(8, 8, 1) == (16, 16)  # at least 16
    assert output_size(100, 50, 1.5) == (144, 80)


def test_restores_to_upscaled_size_deterministically(tiny_pipe):
    lq = photo(size=(32, 24))
    first = tiny_pipe(lq, generator=gen(0), **FAST)
    assert isinstance(first, FluxIRPipelineOutput)
    assert first.images[0].size == (64, 48)
    assert first.nfe == 2
    again = tiny_pipe(lq, generator=gen(0), **FAST).images[0]
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again))
    other = tiny_pipe(lq, generator=gen(1), **FAST).images[0]
    assert not np.array_equal(np.asarray(again), np.asarray(other))


def test_output_types(tiny_pipe):
    lq = photo(size=(32, 32))
    pil = tiny_pipe(lq, generator=gen(), **FAST).images
    arr = tiny_pipe(lq, generator=gen(), output_type="np", **FAST).images
    pt = tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images
    lat = tiny_pipe(lq, generator=gen(), output_type="latent", **FAST).images
    assert isinstance(pil[0], PIL.Image.Image) and pil[0].size == (64, 64)
    assert arr.shape == (1, 64, 64, 3) and 0 <= arr.min() and arr.max() <= 1
    assert pt.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(pt[0].permute(1, 2, 0).numpy(), arr[0], atol=1e-6)
    assert np.abs(np.asarray(pil[0]) / 255.0 - arr[0]).max() <= 1 / 255 + 1e-6
    assert lat.shape == (1, 16, 64)  # packed: (64/16)^2 tokens of 16*4 channels
    image, nfe = tiny_pipe(lq, generator=gen(), return_dict=False, **FAST)
    assert nfe == 2 and image[0].size == (64, 64)


def test_zero_conditioning_equals_fresh_adapter():
    trained = tiny_pipeline(randomize_adapter=True)
    fresh = tiny_pipeline(randomize_adapter=False)
    lq = photo(size=(32, 32))
    off = trained(lq, conditioning_scale=0.0, generator=gen(), output_type="pt", **FAST).images
    zero = fresh(lq, generator=gen(), output_type="pt", **FAST).images
    on = trained(lq, generator=gen(), output_type="pt", **FAST).images
    assert torch.equal(off, zero)
    assert (on - zero).abs().max() > 1e-3


def _plain_euler(pipe, lq, steps, seed):
    """Reference flow-matching Euler sampler, written out by hand, with the same adapter control."""
    width, height = output_size(*lq.size, 2)
    _, lq_latents = pipe.prepare_lq([lq], width, height, "cpu", torch.float32)
    latents = pipe.prepare_latents(1, width, height, torch.float32, "cpu", gen(seed))
    embeds, pooled, txt_ids = pipe.encode_prompt([""], device="cpu")
    pipe.scheduler.set_timesteps(
        sigmas=np.linspace(1.0, 1 / steps, steps),
        mu=pipe.scheduler.config.base_shift
        + (pipe.scheduler.config.max_shift - pipe.scheduler.config.base_shift)
        * (latents.shape[1] - 256)
        / (4096 - 256),
    )
    sigmas = pipe.scheduler.sigmas
    for i in range(steps):
        v = pipe.predict_velocity(
            latents, lq_latents, sigmas[i : i + 1], embeds, pooled, txt_ids, torch.tensor([3.5]),
            height // 16, width // 16,
        )  # fmt: skip
        latents = latents + (sigmas[i + 1] - sigmas[i]) * v
    return latents, lq_latents


def test_restoration_weight_zero_is_the_plain_sampler_and_positive_pulls_to_lq(tiny_pipe):
    lq = photo(size=(32, 32))
    tiny_pipe._joint_attention_kwargs = None
    reference, lq_latents = _plain_euler(tiny_pipe, lq, steps=3, seed=0)
    plain = tiny_pipe(
        lq, restoration_weight=0.0, generator=gen(), output_type="latent", upscale=2, num_inference_steps=3
    )
    torch.testing.assert_close(plain.images, reference, rtol=1e-5, atol=1e-5)
    pulled = tiny_pipe(
        lq, restoration_weight=0.5, generator=gen(), output_type="latent", upscale=2, num_inference_steps=3
    )
    assert (pulled.images - lq_latents).norm() < 0.9 * (plain.images - lq_latents).norm()


def test_one_tile_covering_the_image_equals_untiled(tiny_pipe):
    lq = photo(size=(32, 32))
    untiled = tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images
    tiled = tiny_pipe(lq, tile_size=64, tile_overlap=16, generator=gen(), output_type="pt", **FAST).images
    assert torch.equal(untiled, tiled)


def test_tiled_restoration_has_no_seams(tiny_pipe):
    lq = photo("chelsea", size=(64, 64))
    kwargs = {"output_type": "latent", "num_inference_steps": 2, "upscale": 2}
    untiled = tiny_pipe(lq, generator=gen(), **kwargs).images
    tiled = tiny_pipe(
        lq, tile_size=64, tile_overlap=32, generator=gen(), **kwargs
    ).images  # 8x8 tokens, tiles of 4, overlap 2
    assert tiled.shape == untiled.shape
    # the default overlap is a quarter tile: same tiling as overlap=16 px for a 64 px tile
    default = tiny_pipe(lq, tile_size=64, generator=gen(), **kwargs).images
    assert torch.equal(default, tiny_pipe(lq, tile_size=64, tile_overlap=16, generator=gen(), **kwargs).images)
    grid = unpack_latents(tiled, 16, 16)  # (1, 16, 16, 16) latent
    cols = (grid[..., 1:] - grid[..., :-1]).abs().mean(dim=(0, 1, 2))  # mean jump between neighbouring columns
    # tile borders sit at latent columns 8 (token 4) and 12 (token 6); no jump there stands out from the rest
    assert cols.max() < 2.5 * cols.median()
    assert torch.isfinite(tiled).all()


def test_callback_on_step_end_runs_each_step_and_can_edit_latents(tiny_pipe):
    lq = photo(size=(32, 32))
    seen = []

    def callback(pipe, step, timestep, kwargs):
        seen.append((step, kwargs["latents"].shape, kwargs["lq_latents"].shape))
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == 2 else {}

    out = tiny_pipe(lq, num_inference_steps=3, upscale=2, output_type="latent", generator=gen(),
                    callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "lq_latents"])  # fmt: skip
    assert [s[0] for s in seen] == [0, 1, 2]
    assert torch.count_nonzero(out.images) == 0


def test_color_fix_matches_low_frequencies_of_the_lq(tiny_pipe):
    lq = photo("coffee", size=(32, 32))
    reference = torch.from_numpy(np.asarray(lq.resize((64, 64), PIL.Image.BICUBIC)) / 255.0).permute(2, 0, 1)[None]

    def low(x):
        return torch.nn.functional.avg_pool2d(x.float(), 32)  # the 5-level wavelet keeps scales above ~32 px

    results = {}
    for mode in ("none", "wavelet", "adain"):
        results[mode] = tiny_pipe(lq, color_fix=mode, generator=gen(), output_type="pt", **FAST).images
    err = {mode: (low(img) - low(reference)).abs().mean().item() for mode, img in results.items()}
    assert err["wavelet"] < 0.05 < err["none"]
    assert err["wavelet"] < 0.25 * err["none"]
    means = results["adain"].mean(dim=(2, 3))
    torch.testing.assert_close(means, reference.float().mean(dim=(2, 3)), atol=0.03, rtol=0)


def test_batches_of_images_and_prompts_match_single_runs():
    pipe = tiny_pipeline()
    a, b = photo("astronaut", (32, 32)), photo("chelsea", (32, 32))
    batch = pipe([a, b], prompt=["a cat", ""], generator=[gen(1), gen(2)], output_type="pt", **FAST).images
    single_a = pipe(a, prompt="a cat", generator=gen(1), output_type="pt", **FAST).images
    single_b = pipe(b, generator=gen(2), output_type="pt", **FAST).images
    torch.testing.assert_close(batch[0], single_a[0], atol=2e-4, rtol=0)
    torch.testing.assert_close(batch[1], single_b[0], atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="same size"):
        pipe([a, photo(size=(32, 24))], **FAST)
    with pytest.raises(ValueError, match="3 prompts for 2 images"):
        pipe([a, b], prompt=["x", "y", "z"], **FAST)


def test_prompt_changes_the_result(tiny_pipe):
    lq = photo(size=(32, 32))
    empty = tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images
    prompted = tiny_pipe(lq, prompt="a sharp photo", generator=gen(), output_type="pt", **FAST).images
    assert (empty - prompted).abs().max() > 1e-4


def test_empty_prompt_needs_no_text_encoder():
    components = tiny_components()
    adapter = tiny_adapter(components["transformer"], randomize=True)
    full = FluxIRPipeline(**components, adapter=adapter)
    full.set_progress_bar_config(disable=True)
    uncached = full(photo(size=(32, 32)), generator=gen(), output_type="pt", **FAST).images
    full.cache_empty_prompt_embeds()
    lean = FluxIRPipeline(**{**components, "text_encoder": None, "tokenizer": None, "text_encoder_2": None,
                             "tokenizer_2": None}, adapter=adapter)  # fmt: skip
    lean.set_progress_bar_config(disable=True)
    cached = lean(photo(size=(32, 32)), generator=gen(), output_type="pt", **FAST).images
    torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="text_encoder.*pass `prompt_embeds`"):
        lean(photo(size=(32, 32)), prompt="a cat", **FAST)


def test_save_and_load_round_trip(tmp_path, tiny_pipe):
    lq = photo(size=(32, 32))
    expected = tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    import json

    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    # The saved format: module files diffusers resolves; older folders name the library path, which stays importable.
    assert index["_class_name"] == ["pipeline_fluxir", "FluxIRPipeline"]
    assert index["adapter"] == ["adapter_fluxir", "FluxIRAdapter"]
    loaded = FluxIRPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(
        loaded(lq, generator=gen(), output_type="pt", **FAST).images, expected, rtol=0, atol=1e-5
    )


def test_from_pretrained_base_id_plus_adapter_from_offline_hub_cache(tmp_path, tiny_pipe):
    components = {k: v for k, v in tiny_pipe.components.items() if k != "adapter"}
    FluxPipeline(**components).save_pretrained(tmp_path / "base")
    tiny_pipe.adapter.save_pretrained(tmp_path / "adapter")
    cache = tmp_path / "hub"
    make_hub_cache(tmp_path / "base", "black-forest-labs/FLUX.1-dev", cache)
    make_hub_cache(tmp_path / "adapter", "fluxir/adapter", cache)
    adapter = FluxIRAdapter.from_pretrained("fluxir/adapter", cache_dir=cache)
    pipe = FluxIRPipeline.from_pretrained(
        "black-forest-labs/FLUX.1-dev", adapter=adapter, cache_dir=cache, text_encoder_2=None, tokenizer_2=None
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.text_encoder_2 is None
    lq = photo(size=(32, 32))
    torch.testing.assert_close(
        pipe(lq, generator=gen(), output_type="pt", **FAST).images,
        tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images,
        rtol=0,
        atol=1e-5,
    )


def test_model_cpu_offload_runs(tiny_pipe):
    lq = photo(size=(32, 32))
    expected = tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images
    tiny_pipe.enable_model_cpu_offload(device="cpu")
    torch.testing.assert_close(tiny_pipe(lq, generator=gen(), output_type="pt", **FAST).images, expected)


def test_mismatched_adapter_is_refused():
    components = tiny_components()
    adapter = tiny_adapter(tiny_components(size="mid")["transformer"])
    with pytest.raises(ValueError, match="different base transformer"):  # refused when the pipeline is built
        FluxIRPipeline(**components, adapter=adapter)
    pipe = FluxIRPipeline(**components, adapter=tiny_adapter(components["transformer"]))
    pipe.adapter = adapter  # swapped afterwards: refused at the next call
    with pytest.raises(ValueError, match="different base transformer"):
        pipe(photo(size=(32, 32)), **FAST)


def test_num_images_per_prompt_and_custom_sigmas(tiny_pipe):
    lq = photo(size=(16, 16))
    out = tiny_pipe([lq, lq.rotate(90)], upscale=2, num_inference_steps=2, num_images_per_prompt=3, output_type="pt")
    assert out.images.shape[0] == 6
    assert not torch.allclose(out.images[0], out.images[1])  # different noise per copy
    stepped = []

    def record(pipe, i, t, kwargs):
        stepped.append(float(t) / 1000)
        return {}

    custom = tiny_pipe(lq, upscale=2, sigmas=[1.0, 0.6, 0.2], generator=gen(), output_type="pt",
                       callback_on_step_end=record)  # fmt: skip
    assert custom.nfe == 3
    assert torch.allclose(torch.tensor(stepped), _shifted(tiny_pipe, [1.0, 0.6, 0.2]))
    for bad in ([0.5, 0.7], [], [1.5, 0.5]):
        with pytest.raises(ValueError, match="sigmas"):
            tiny_pipe(lq, upscale=2, sigmas=bad)
    with pytest.raises(ValueError, match="num_images_per_prompt"):
        tiny_pipe(lq, upscale=2, num_images_per_prompt=0)


def _shifted(pipe, sigmas):
    import math

    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    mu = calculate_shift(4, 256, 4096, 0.5, 1.15)  # a 32x32 output: 2x2 tokens
    return torch.tensor([math.exp(mu) / (math.exp(mu) + (1 / s - 1)) for s in sigmas], dtype=torch.float32)


def test_adapter_has_the_attention_processor_api():
    adapter = tiny_adapter(tiny_components()["transformer"])
    processors = adapter.attn_processors
    assert processors and all("block.attn" in name for name in processors)
    adapter.set_attn_processor(dict(processors))  # round trip
    assert adapter.attn_processors.keys() == processors.keys()


def test_generic_diffusers_loaders_return_our_classes(tmp_path):
    import json

    from diffusers import AutoModel, DiffusionPipeline
    from diffusers.pipelines.pipeline_loading_utils import _get_custom_components_and_folders

    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.testing import make_hub_cache

    folder = tmp_path / "saved"
    tiny_pipeline().save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_fluxir", "FluxIRPipeline"]
    assert isinstance(DiffusionPipeline.from_pretrained(folder, trust_remote_code=True), FluxIRPipeline)
    assert isinstance(AutoModel.from_pretrained(str(folder / "adapter"), trust_remote_code=True), FluxIRAdapter)
    assert isinstance(FluxIRPipeline.from_pretrained(folder), FluxIRPipeline)  # no flag needed for our own files
    # The check diffusers runs on a Hub download: every custom component's module file is in the repo.
    filenames = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
    custom, _ = _get_custom_components_and_folders("me/fluxir", index, filenames)
    assert custom == {"adapter": "adapter_fluxir"}
    snapshot = make_hub_cache(folder, "me/fluxir", tmp_path / "hub")
    loaded = FluxIRPipeline.from_pretrained("me/fluxir", cache_dir=tmp_path / "hub")
    assert isinstance(loaded.adapter, FluxIRAdapter) and snapshot
    # A module file that does anything else needs the user's consent, as diffusers asks.
    (folder / "pipeline_fluxir.py").write_text("import os  # something else\nfrom fluxir_hub import FluxIRPipeline\n")
    with pytest.raises(ValueError, match="trust_remote_code|custom code"):
        FluxIRPipeline.from_pretrained(folder)


def test_folders_saved_before_the_module_files_still_load(tmp_path):
    import json

    folder = tmp_path / "old"
    tiny_pipeline().save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"], index["adapter"] = "FluxIRPipeline", ["fluxir_hub.models.adapter_fluxir", "FluxIRAdapter"]
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "pipeline_fluxir.py").unlink()
    assert isinstance(FluxIRPipeline.from_pretrained(folder), FluxIRPipeline)


def test_concurrent_calls_with_different_schedules_do_not_interfere():
    # The scheduler's timesteps and step index are per call: a shared, mutated scheduler let one call step with the
    # other's noise levels.
    import threading

    pipe = tiny_pipeline()
    lq = photo(size=(16, 16))
    settings = [{"num_inference_steps": 3}, {"num_inference_steps": 7}, {"sigmas": [1.0, 0.4]}]
    expected = [pipe(lq, generator=gen(i), output_type="pt", **kw).images for i, kw in enumerate(settings)]
    for _ in range(3):
        results: dict[int, torch.Tensor] = {}
        barrier = threading.Barrier(len(settings))

        def run(i, kw, barrier=barrier, results=results):
            barrier.wait()
            try:
                results[i] = pipe(lq, generator=gen(i), output_type="pt", **kw).images
            except Exception as err:  # surfaced below: a thread's exception would otherwise vanish
                results[i] = err

        threads = [threading.Thread(target=run, args=(i, kw)) for i, kw in enumerate(settings)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i in range(len(settings)):
            assert not isinstance(results[i], Exception), results[i]
            torch.testing.assert_close(results[i], expected[i], rtol=1e-5, atol=1e-5)
