import json
import math

import pytest
import torch

from dataset_builder import PRESETS, apply_degradation, degrade, sample_degradation
from fluxir_hub.degradations.kernels import KERNEL_TYPES, make_kernel
from fluxir_hub.degradations.ops import add_noise, filter2d
from fluxir_hub.degradations.realesrgan import SR_PRESETS

from .helpers import photo

N = 1000


@pytest.fixture(scope="module")
def draws():
    return {name: [sample_degradation(name, (512, 512), 4, seed) for seed in range(N)] for name in SR_PRESETS}


def _within(value, bounds):
    return bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9


def _frac(items, predicate):
    return sum(map(predicate, items)) / len(items)


def _close(p, expected, n=N):
    # 4.5 standard errors: a real bug in a probability moves it far more; chance failures are ~1e-5
    return abs(p - expected) <= 4.5 * math.sqrt(expected * (1 - expected) / n) + 1e-9


@pytest.mark.parametrize("name", sorted(SR_PRESETS))
def test_sampled_values_stay_in_spec_ranges(draws, name):
    config = PRESETS[name]
    for record in draws[name]:
        json.dumps(record)  # JSON-plain
        for stage_name, stage in (("stage1", config.stage1), ("stage2", config.stage2)):
            rec = record[stage_name]
            kernel = rec["kernel"]
            if kernel is not None:
                assert kernel["size"] in stage.kernel_sizes
                if kernel["type"] == "sinc":
                    assert _within(kernel["omega_c"], (math.pi / 5, math.pi))
                else:
                    assert kernel["type"] in KERNEL_TYPES
                    assert _within(kernel["sigma_x"], stage.blur_sigma) and _within(
                        kernel["sigma_y"], stage.blur_sigma
                    )
                    if kernel["type"].startswith("generalized"):
                        assert _within(kernel["beta"], stage.beta_gaussian)
                    if kernel["type"].startswith("plateau"):
                        assert _within(kernel["beta"], stage.beta_plateau)
            assert _within(rec["resize"]["factor"], stage.resize_range)
            noise = rec["noise"]
            if noise["type"] == "gaussian":
                assert _within(noise["sigma"], stage.noise_sigma)
            else:
                assert _within(noise["scale"], stage.poisson_scale)
        assert _within(record["stage1"]["jpeg_quality"], config.stage1.jpeg_quality)
        assert _within(record["final"]["jpeg_quality"], config.stage2.jpeg_quality)
        assert record["final"]["size"] == [128, 128]
        assert record["usm_sharpen"] == config.usm_sharpen


@pytest.mark.parametrize("name", sorted(SR_PRESETS))
def test_branch_probabilities(draws, name):
    config = PRESETS[name]
    recs = draws[name]
    assert _close(_frac(recs, lambda r: r["stage2"]["blur"]), config.stage2.blur_prob)
    assert _close(_frac(recs, lambda r: r["final"]["sinc"] is not None), config.final_sinc_prob)
    assert _close(_frac(recs, lambda r: r["final"]["order"] == "resize_sinc_then_jpeg"), 0.5)
    for stage_name, stage in (("stage1", config.stage1), ("stage2", config.stage2)):
        stage_recs = [r[stage_name] for r in recs]
        assert _close(_frac(stage_recs, lambda r: r["noise"]["type"] == "gaussian"), stage.gaussian_noise_prob)
        assert _close(_frac(stage_recs, lambda r: r["noise"]["gray"]), stage.gray_noise_prob)
        for direction, p in zip(("up", "down", "keep"), stage.resize_probs, strict=True):
            assert _close(_frac(stage_recs, lambda r, d=direction: r["resize"]["direction"] == d), p)
    stage1 = [r["stage1"]["kernel"] for r in recs]
    assert _close(_frac(stage1, lambda k: k["type"] == "sinc"), config.stage1.sinc_prob)
    non_sinc = [k for k in stage1 if k["type"] != "sinc"]
    for kind, p in zip(config.stage1.kernel_types, config.stage1.kernel_probs, strict=True):
        assert _close(_frac(non_sinc, lambda k, t=kind: k["type"] == t), p, n=len(non_sinc))


def test_preset_numbers_follow_the_spec():
    seesr, real, mild = PRESETS["seesr"], PRESETS["realesrgan"], PRESETS["mild"]
    assert seesr.stage1.kernel_probs == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    # SeeSR's code draws stage-2 kernel sizes from 7..21 (its `blur_kernel_size2 = 11` is never read)
    for preset in (seesr, real, mild):
        assert preset.stage2.kernel_sizes == tuple(range(7, 22, 2))
    assert seesr.sharpen_target and real.sharpen_target and not mild.sharpen_target
    assert seesr.stage2.blur_sigma == (0.2, 1.5) and seesr.stage2.noise_sigma == (1.0, 25.0)
    assert mild.stage1.resize_range == (0.3, 1.5) and mild.stage2.resize_range == (0.6, 1.2)
    assert mild.stage2.jpeg_quality == (60.0, 100.0) and mild.stage2.blur_prob == 0.5 and not mild.usm_sharpen


def test_kernels_sum_to_one_and_are_centred():
    for record in (sample_degradation("seesr", (64, 64), 4, s) for s in range(200)):
        for spec in (record["stage1"]["kernel"], record["stage2"]["kernel"], record["final"]["sinc"]):
            if spec is None:
                continue
            kernel = make_kernel(spec)
            assert kernel.shape == (spec["size"], spec["size"])
            assert abs(kernel.sum() - 1) < 1e-9
    # a centred kernel leaves a constant image unchanged and keeps a delta centred
    kernel = make_kernel({"type": "aniso", "size": 21, "sigma_x": 2.0, "sigma_y": 0.5, "rotation": 0.4})
    flat = torch.full((1, 3, 32, 32), 0.3, dtype=torch.float64)
    torch.testing.assert_close(filter2d(flat, kernel), flat)


def test_same_seed_same_lq_and_record_replays_bit_exactly():
    hq = photo("astronaut", (96, 64))
    a, b = degrade(hq, seed=3), degrade(hq, seed=3)
    assert a.lq.size == (24, 16)
    assert a.lq.tobytes() == b.lq.tobytes() and a.params == b.params
    replay = apply_degradation(a.hq, json.loads(json.dumps(a.params)))  # the stored target and its record
    assert replay.tobytes() == a.lq.tobytes()
    assert degrade(hq, seed=4).lq.tobytes() != a.lq.tobytes()
    assert degrade(photo(size=(101, 67)), scale=4, seed=0).lq.size == (25, 16)  # floor of HQ / scale


def test_noise_statistics():
    image = torch.full((1, 3, 128, 128), 0.5)
    noisy = add_noise(image, {"type": "gaussian", "sigma": 20.0, "gray": False, "seed": 1})
    assert abs((noisy - image).std().item() - 20 / 255) < 0.005
    gray = add_noise(image, {"type": "gaussian", "sigma": 20.0, "gray": True, "seed": 1})
    assert torch.equal(gray[:, 0], gray[:, 1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown degradation preset 'fancy'"):
        degrade(photo(), preset="fancy")
    with pytest.raises(ValueError, match="smaller than the scale"):
        degrade(photo(size=(3, 3)), scale=4)
    with pytest.raises(ValueError, match="sampled for a"):
        apply_degradation(photo(size=(40, 40)), sample_degradation("seesr", (64, 64), 4, 0))


def test_stage2_sinc_reaches_low_cutoffs_and_plateau_beta_is_drawn_as_basicsr(draws):
    stage2 = [r["stage2"]["kernel"] for r in draws["seesr"] if r["stage2"]["kernel"]]
    assert {k["size"] for k in stage2} == set(range(7, 22, 2))
    assert min(k["omega_c"] for k in stage2 if k["type"] == "sinc") < math.pi / 3  # large kernels allow pi/5
    plateau = [r["stage1"]["kernel"] for r in draws["seesr"] if r["stage1"]["kernel"]["type"].startswith("plateau")]
    # BasicSR: half the draws from uniform(1, 1) (exactly 1 with beta_p in [1, 2]), half from [1, 2)
    assert _close(_frac(plateau, lambda k: k["beta"] == 1.0), 0.5, n=len(plateau))


def test_usm_mask_is_per_channel_as_basicsr():
    from fluxir_hub.degradations.ops import usm_sharpen

    image = torch.full((1, 3, 64, 64), 0.5)
    image[:, 0, :, 32:] = 0.9  # an edge in the red channel only
    per_channel = usm_sharpen(image)
    shared = usm_sharpen(image, per_channel_mask=False)
    # Green and blue have no residual: BasicSR's per-channel mask leaves them alone exactly.
    assert torch.equal(per_channel[:, 1:], image[:, 1:])
    torch.testing.assert_close(per_channel[:, 0], shared[:, 0])


def test_sharpened_target_replays_bit_exactly_and_old_records_still_replay():
    hq = photo("astronaut", (96, 64))
    result = degrade(hq, preset="seesr", seed=5)
    assert result.params["target"] == "usm" and result.params["format_version"] == 2
    assert result.hq.tobytes() != hq.tobytes()  # the stored target is the unsharp-masked image
    assert apply_degradation(result.hq, json.loads(json.dumps(result.params))).tobytes() == result.lq.tobytes()
    plain = degrade(hq, preset="seesr", seed=5, sharpen_target=False)
    assert plain.params["target"] == "hq" and plain.hq is hq or plain.hq.tobytes() == hq.tobytes()
    assert apply_degradation(hq, plain.params).tobytes() == plain.lq.tobytes()
    old = {**plain.params, "format_version": 1}  # a record from before the per-channel USM mask
    assert apply_degradation(hq, old).tobytes() != plain.lq.tobytes()  # replayed with the old shared mask
    with pytest.raises(ValueError, match="does not sharpen"):
        degrade(hq, preset="mild", sharpen_target=True)


def test_severity_of_each_preset_on_photos():
    """PSNR of the bicubic-upscaled LQ against the HQ target (the numbers the README quotes)."""
    import numpy as np
    from PIL import Image

    values = {}
    for name in sorted(SR_PRESETS):
        psnrs = []
        for seed, photo_name in enumerate(("astronaut", "chelsea", "coffee", "rocket")):
            result = degrade(photo(photo_name, (256, 256)), preset=name, seed=seed)
            up = np.asarray(result.lq.resize((256, 256), Image.BICUBIC), dtype=np.float64) / 255
            target = np.asarray(result.hq, dtype=np.float64) / 255
            psnrs.append(10 * np.log10(1 / np.mean((up - target) ** 2)))
        values[name] = float(np.mean(psnrs))
    assert 18 < values["seesr"] < 26 and values["mild"] > values["seesr"] - 0.5, values
