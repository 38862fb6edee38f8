import pytest
import torch

from fluxir_hub.color_fix import wavelet_decompose
from fluxir_hub.latents import image_ids, pack_latents, unpack_latents
from fluxir_hub.restoration_guidance import apply_restoration_guidance, restoration_gate
from fluxir_hub.tiling import blend_ramp, tile_starts, tiled_map

from .helpers import gen, photo


def test_restoration_gate_follows_paper_004_eq_2():
    assert restoration_gate(0.8, 0.8) == 0.0 and restoration_gate(0.5, 0.8) == 0.0
    assert restoration_gate(0.9, 0.8) == pytest.approx(0.5)
    assert restoration_gate(1.0, 0.8) == pytest.approx(1.0)
    z, lq = torch.zeros(1, 4, 8), torch.ones(1, 4, 8)
    torch.testing.assert_close(apply_restoration_guidance(z, lq, 0.9, weight=0.05, threshold=0.8), z + 0.025)
    assert apply_restoration_guidance(z, lq, 0.5, weight=0.05) is z  # below the threshold: untouched
    with pytest.raises(ValueError, match="restoration_threshold"):
        restoration_gate(0.9, 1.0)


@pytest.mark.parametrize("length, tile, overlap", [(10, 4, 1), (16, 8, 4), (7, 3, 2), (5, 8, 2), (33, 16, 0)])
def test_tiles_cover_everything_with_the_requested_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = torch.zeros(length, dtype=torch.bool)
    for start in starts:
        covered[start : start + min(tile, length)] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))
    assert (blend_ramp(min(tile, length), overlap) > 0).all()


def test_tiled_map_is_exact_for_tokenwise_functions():
    grid = torch.randn(2, 11, 9, 5, generator=torch.Generator().manual_seed(0))
    out = tiled_map(lambda t, h, w: t * 3 - 1, grid, tile=4, overlap=2)
    torch.testing.assert_close(out, grid * 3 - 1)


def test_tiled_map_blends_tile_dependent_results_smoothly():
    # Each tile answers with its own mean over a ramp, so neighbouring tiles disagree by 4 (their offset). Hard tile
    # borders would jump by 4 at once; the ramped overlap spreads that over the overlap cells.
    grid = torch.arange(24.0).view(1, 1, 24, 1)
    out = tiled_map(lambda t, h, w: t.mean().expand_as(t), grid, tile=8, overlap=4)[0, 0, :, 0]
    jumps = (out[1:] - out[:-1]).abs()
    assert jumps.max() <= 0.4 * 4 + 1e-5  # at most 40 % of the hard-border jump
    assert out[0] == pytest.approx(3.5) and out[-1] == pytest.approx(19.5)  # edges keep their own tile's value


def test_pack_unpack_round_trip_and_ids():
    latents = torch.randn(2, 16, 6, 10)
    packed = pack_latents(latents)
    assert packed.shape == (2, 15, 64)
    torch.testing.assert_close(unpack_latents(packed, 6, 10), latents)
    ids = image_ids(3, 5)
    assert ids.shape == (15, 3) and ids[7].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="even"):
        pack_latents(torch.randn(1, 16, 5, 4))


def test_wavelet_split_is_lossless():
    image = torch.rand(1, 3, 40, 40)
    high, low = wavelet_decompose(image, levels=5)
    torch.testing.assert_close(high + low, image)
    assert low.std() < image.std()  # the low band is smooth


def test_restoration_clock_step_is_papers_t_over_T_and_sigma_pulls_twice_as_hard_at_1024():
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    from fluxir_hub.restoration_guidance import restoration_clock, total_pull
    from fluxir_hub.testing import FLUX_SCHEDULER_CONFIG

    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 20, 20), mu=calculate_shift(4096, 256, 4096, 0.5, 1.15))
    step = restoration_clock(scheduler.sigmas.tolist(), 20, "step")
    sigma = restoration_clock(scheduler.sigmas.tolist(), 20, "sigma")
    assert step[:5] == pytest.approx([1.0, 0.95, 0.9, 0.85, 0.8])
    assert sum(x > 0.8 for x in step) == 4 and sum(x > 0.8 for x in sigma) == 9
    assert total_pull(step, 0.05) == pytest.approx(0.1196, abs=1e-4)  # the numbers in the sampling docstring
    assert total_pull(sigma, 0.05) == pytest.approx(0.2421, abs=1e-4)
    with pytest.raises(ValueError, match="restoration_schedule"):
        restoration_clock(step, 20, "linear")


@pytest.mark.parametrize("schedule", ["step", "sigma"])
def test_pipeline_pulls_on_the_chosen_clock(tiny_pipe, monkeypatch, schedule):
    import fluxir_hub.pipelines.pipeline_fluxir as module

    seen = []
    real = module.apply_restoration_guidance
    monkeypatch.setattr(
        module, "apply_restoration_guidance", lambda z, lq, x, *a: seen.append(x) or real(z, lq, x, *a)
    )
    stepped = []

    def record(pipe, i, t, kwargs):
        stepped.append(float(t) / 1000)
        return {}

    tiny_pipe(photo(size=(16, 16)), upscale=2, num_inference_steps=5, restoration_schedule=schedule,
              callback_on_step_end=record)  # fmt: skip
    if schedule == "step":
        assert seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    else:
        assert seen == pytest.approx(stepped) and stepped[1] != pytest.approx(0.8)  # the shifted flow times


def test_auto_tiles_only_when_one_pass_does_not_fit():
    from fluxir_hub.tiling import auto_tile_size

    gib = 2**30
    # FLUX.1-dev (3072 channels, bf16) at 2048x2048 on an 80 GB GPU: one pass (it is the cheaper one)
    assert auto_tile_size(2048, 2048, 3072, 2, free_bytes=60 * gib) is None
    # ...with 2 GiB free it tiles, and the tile it picks fits the budget
    tile = auto_tile_size(2048, 2048, 3072, 2, free_bytes=2 * gib)
    assert tile is not None and tile % 16 == 0 and 64 <= tile < 2048
    assert (tile // 16) ** 2 * 3072 * 2 * 18 <= gib
    assert auto_tile_size(4096, 4096, 3072, 2, free_bytes=2 * gib) == tile  # the tile depends on memory, not size


def test_pipeline_auto_tiling_runs(tiny_pipe, monkeypatch):
    import fluxir_hub.tiling as tiling

    out = tiny_pipe(photo(size=(16, 16)), upscale=2, num_inference_steps=1, tile_size="auto", output_type="pt")
    assert out.images.shape[-2:] == (32, 32) and tiny_pipe.auto_tile_size(32, 32) is None  # fits: one pass
    monkeypatch.setattr(tiling, "free_memory", lambda device: 200_000)  # a device with almost nothing free
    tile = tiny_pipe.auto_tile_size(128, 128)
    assert tile is not None and tile < 128

    def restore(tile_size):
        lq = photo(size=(64, 64))
        return tiny_pipe(lq, upscale=2, num_inference_steps=1, tile_size=tile_size, generator=gen(), output_type="pt")

    auto = restore("auto").images
    torch.testing.assert_close(auto, restore(tile).images, rtol=0, atol=0)  # "auto" tiled, with that tile
    assert not torch.equal(auto, restore(None).images)
