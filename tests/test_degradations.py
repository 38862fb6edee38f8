import json
import math

import pytest
import torch

from dataset_builder import PRESETS, apply_degradation, degrade, sample_degradation
from dataset_builder.degradations import add_noise, filter2d
from dataset_builder.kernels import KERNEL_TYPES, make_kernel

from .helpers import photo

N = 1000


@pytest.fixture(scope="module")
def draws():
    return {name: [sample_degradation(name, (512, 512), 4, seed) for seed in range(N)] for name in PRESETS}


def _within(value, bounds):
    return bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9


def _frac(items, predicate):
    return sum(map(predicate, items)) / len(items)


def _close(p, expected, n=N):
    # 4.5 standard errors: a real bug in a probability moves it far more; chance failures are ~1e-5
    return abs(p - expected) <= 4.5 * math.sqrt(expected * (1 - expected) / n) + 1e-9


@pytest.mark.parametrize("name", sorted(PRESETS))
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


@pytest.mark.parametrize("name", sorted(PRESETS))
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
    assert max(seesr.stage2.kernel_sizes) == 11 and max(real.stage2.kernel_sizes) == 21
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
    replay = apply_degradation(hq, json.loads(json.dumps(a.params)))
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
