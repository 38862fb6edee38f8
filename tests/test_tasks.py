"""Paper 002's seven restoration tasks: the degradation families, the `mixed` preset, task prompts in training, the
pipeline, the Space and per-task evaluation."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dataset_builder import degrade as legacy_degrade
from fluxir_hub.degradations import (
    DEFAULT_WEIGHTS,
    TASKS,
    MixedConfig,
    apply_degradation,
    degrade,
    parse_weights,
    sample_degradation,
)
from fluxir_hub.degradations.motion_blur import MotionBlurConfig, record_kernel, shake_trajectory, trajectory_kernel
from fluxir_hub.testing import tiny_pipeline

from .helpers import gen, photo

SAME_SIZE = [t for t in TASKS if t != "sr"]


def _array(image):
    return np.asarray(image, dtype=np.float64) / 255


@pytest.mark.parametrize("preset", [*SAME_SIZE, "mixed"])
def test_every_task_replays_bit_exactly_from_its_json_record(preset):
    hq = photo("chelsea", (96, 80))
    for seed in (0, 1):
        result = degrade(hq, preset, scale=4, seed=seed)
        record = json.loads(json.dumps(result.params))  # JSON-plain, as FluxGen stores it
        again = apply_degradation(result.hq, record)
        assert np.array_equal(np.asarray(again), np.asarray(result.lq))
        assert result.task in TASKS and record["task"] == result.task
        expected = (24, 20) if result.task == "sr" else (96, 80)
        assert result.lq.size == expected and record["scale"] == (4 if result.task == "sr" else 1)
        assert not np.array_equal(np.asarray(result.lq), np.asarray(degrade(hq, preset, 4, seed + 7).lq))
    assert legacy_degrade is degrade  # `from dataset_builder import degrade` keeps working


def test_each_task_degrades_the_way_its_name_says():
    hq = photo("astronaut", (128, 128))
    ref = _array(hq)

    def lq(task, seed=0):
        return _array(degrade(hq, task, seed=seed).lq)

    def sharpness(a):  # mean gradient magnitude
        return np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()

    blurred = [sharpness(lq("motion_blur", s)) / sharpness(ref) for s in range(6)]
    assert all(b < 0.9 for b in blurred) and np.mean(blurred) < 0.7, blurred  # a 1/10 exposure blurs least
    assert all(lq("low_light", s).mean() < 0.7 * ref.mean() for s in range(4))  # darker
    for s in range(4):
        water = lq("underwater", s)
        red, blue = water[..., 0].mean() / ref[..., 0].mean(), water[..., 2].mean() / ref[..., 2].mean()
        assert red < blue  # red is absorbed first
    noisy = [lq("denoise", s) for s in range(6)]
    assert all(np.abs(n - ref).mean() > 0.01 for n in noisy) and all(abs(n.mean() - ref.mean()) < 0.08 for n in noisy)
    assert all(lq("desnow", s).mean() > ref.mean() for s in range(4))  # white flakes and haze
    # raindrops change only what lies under a drop
    result = degrade(hq, "raindrop", seed=3)
    changed = np.any(np.asarray(result.lq) != np.asarray(hq), axis=-1)
    yy, xx = np.mgrid[:128, :128]
    inside = np.zeros_like(changed)
    for d in result.params["raindrop"]["drops"]:
        inside |= ((xx - d["cx"]) / d["rx"]) ** 2 + ((yy - d["cy"]) / d["ry"]) ** 2 <= 1.05
    assert changed.any() and not (changed & ~inside).any()


def test_motion_kernels_are_normalised_and_centred():
    for seed in range(5):
        record = sample_degradation("motion_blur", (64, 64), seed=seed)["motion_blur"]
        kernel = record_kernel(record)
        size = record["kernel_size"]
        ys, xs = np.mgrid[:size, :size]
        assert kernel.sum() == pytest.approx(1.0) and (kernel >= 0).all()
        assert abs((kernel * xs).sum() - size // 2) < 1.0 and abs((kernel * ys).sum() - size // 2) < 1.0


def _axis_ratio(kernel: np.ndarray) -> float:
    """sqrt of the smaller / larger eigenvalue of the kernel's second moments: 1 for a blob, 0 for a line."""
    ys, xs = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    k = kernel / kernel.sum()
    mx, my = (k * xs).sum(), (k * ys).sum()
    cxy = (k * (xs - mx) * (ys - my)).sum()
    low, high = np.linalg.eigvalsh([[(k * (xs - mx) ** 2).sum(), cxy], [cxy, (k * (ys - my) ** 2).sum()]])
    return float(np.sqrt(max(low, 0.0) / high))


def test_camera_shake_matches_the_reference_generators_statistics():
    """Boracchi-Foi as DeblurGAN runs it (2000 points, anxiety from its list, a 60 px path rasterised with sub-pixel
    weights), measured there on 200 seeded draws: end-to-end / path length 0.145, kernel minor/major axes 0.450. The
    walk this replaced (64 points, anxiety <= 0.005) measured 1.000 and 0.1: straight streaks only."""
    config = MotionBlurConfig()
    straightness, axes = [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        path = shake_trajectory(rng, config.points, 60.0, float(rng.choice(config.anxiety)))
        steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
        straightness.append(np.linalg.norm(path[-1] - path[0]) / steps.sum())
        axes.append(_axis_ratio(trajectory_kernel(path, 64)))
    assert abs(np.mean(straightness) - 0.145) < 0.05, np.mean(straightness)
    assert abs(np.mean(axes) - 0.450) < 0.07, np.mean(axes)


def test_motion_blur_records_of_the_first_format_still_replay():
    hq = photo("coffee", (64, 64))
    old = {"kernel_size": 9, "trajectory": [[-3.0, 0.0], [-1.0, 0.5], [1.0, 0.5], [3.0, 0.0]],
           "noise": {"type": "gaussian", "sigma": 0.0, "gray": False, "seed": 1}}  # fmt: skip
    record = {**degrade(hq, "motion_blur", seed=0).params, "motion_blur": old}
    replayed = np.asarray(apply_degradation(hq, record), dtype=np.float64)
    from fluxir_hub.degradations.ops import filter2d

    tensor = torch.from_numpy(np.asarray(hq, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    expected = filter2d(tensor, trajectory_kernel(old["trajectory"], 9)).clamp(0, 1)
    assert np.abs(replayed / 255 - expected[0].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    new = degrade(hq, "motion_blur", seed=4)
    assert new.params["motion_blur"]["format"] == 3 and "trajectory" not in new.params["motion_blur"]
    assert np.array_equal(np.asarray(apply_degradation(new.hq, new.params)), np.asarray(new.lq))
    # format 2 stored the dense kernel: the same kernel replays to the same LQ
    part = new.params["motion_blur"]
    dense = {key: value for key, value in part.items() if key != "kernel_entries"}
    dense.update(format=2, kernel=record_kernel(part).tolist())
    replayed = apply_degradation(new.hq, {**new.params, "motion_blur": dense})
    assert np.abs(np.asarray(replayed, dtype=int) - np.asarray(new.lq, dtype=int)).max() <= 1


def _main_axis_extent(kernel: np.ndarray) -> float:
    ys, xs = np.nonzero(kernel > 1e-4)
    weights = kernel[ys, xs]
    points = np.stack([xs, ys], axis=1).astype(float)
    offsets = points - (points * weights[:, None]).sum(0) / weights.sum()
    axis = np.linalg.eigh((offsets * weights[:, None]).T @ offsets)[1][:, -1]
    return float(np.ptp(offsets @ axis))


def test_motion_blur_covers_the_references_share_of_the_image():
    """The reference draws a 60 px path for 256 px images and keeps 1/10, 1/2 or all of it: its kernels' median extent
    along their main axis is ~12-15 px there (the first version's: 6 px), twice that on an image twice the size."""
    config = MotionBlurConfig()

    def median_extent(size):
        records = [config.sample(np.random.default_rng(seed), size) for seed in range(120)]
        return float(np.median([_main_axis_extent(record_kernel(r)) for r in records]))

    small = median_extent((256, 256))
    assert 11 < small < 18, small  # the first version (a path in kernel pixels) measured 6
    # a path drawn in fixed pixels would give 1.0 here: the blur must grow with the image
    assert 1.8 < median_extent((512, 512)) / small < 2.2
    # the shorter side sets the scale (a wide image is blurred like a square one of its height)
    assert median_extent((1024, 256)) == small


def test_large_kernels_go_through_the_fft_as_the_direct_convolution_would():
    from fluxir_hub.degradations.ops import FFT_KERNEL_SIZE, filter2d

    image = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    kernel = torch.rand(FFT_KERNEL_SIZE + 10, FFT_KERNEL_SIZE + 10, generator=torch.Generator().manual_seed(1))
    kernel /= kernel.sum()
    pad = kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(image, (pad,) * 4, mode="reflect")
    direct = torch.nn.functional.conv2d(padded, kernel.expand(3, 1, *kernel.shape), groups=3)
    assert torch.allclose(filter2d(image, kernel), direct, atol=1e-5)


def test_low_light_darkens_as_lv_et_al_and_old_records_keep_their_model():
    from fluxir_hub.degradations.low_light import LowLightConfig

    hq = photo("coffee", (128, 128))
    ref = np.asarray(hq, dtype=np.float64).mean()

    def brightness(preset):
        return np.mean([np.asarray(degrade(hq, preset, seed=s).lq, dtype=np.float64).mean() / ref for s in range(20)])

    assert abs(brightness("low_light") - 0.31) < 0.04  # Lv et al.'s Eq. 1 (the exposure model kept 0.40)
    assert abs(brightness(LowLightConfig(model="exposure")) - 0.40) < 0.04
    old = degrade(hq, LowLightConfig(model="exposure"), seed=2)  # no `model` key: as records were written before
    assert "model" not in old.params["low_light"]
    assert np.array_equal(np.asarray(apply_degradation(old.hq, old.params)), np.asarray(old.lq))


def test_mixed_draws_tasks_with_their_weights_and_refuses_bad_weights():
    draws = [sample_degradation("mixed", (64, 64), 4, seed)["task"] for seed in range(2000)]
    total = sum(DEFAULT_WEIGHTS.values())
    for task, weight in DEFAULT_WEIGHTS.items():
        expected = weight / total
        assert abs(draws.count(task) / len(draws) - expected) < 4.5 * np.sqrt(expected * (1 - expected) / 2000)
    only = MixedConfig(weights={"denoise": 1.0, "sr": 0.0})
    assert {sample_degradation(only, (64, 64), 4, s)["task"] for s in range(50)} == {"denoise"}
    assert parse_weights("sr=5, denoise=2") == {"sr": 5.0, "denoise": 2.0}
    for bad, message in (("deraining=1", "Unknown restoration task"), ("sr", "task=weight"), ("sr=x", "not a number")):
        with pytest.raises(ValueError, match=message):
            parse_weights(bad)
    with pytest.raises(ValueError, match="At least one task weight"):
        MixedConfig(weights={"sr": 0.0})
    with pytest.raises(ValueError, match="Unknown degradation preset 'rain'"):
        degrade(photo(), "rain")
    with pytest.raises(ValueError, match="no sharpened target"):
        degrade(photo(), "denoise", sharpen_target=True)


def test_old_records_without_a_task_still_replay():
    hq = photo("coffee", (64, 64))
    result = degrade(hq, "seesr", scale=4, seed=5)
    old = {k: v for k, v in result.params.items() if k != "task"}  # records written before tasks existed
    assert np.array_equal(np.asarray(apply_degradation(result.hq, old)), np.asarray(result.lq))


def _all_in_one(pipe):
    pipe.adapter.register_to_config(task_prompts={t: TASKS[t].prompt for t in ("sr", "denoise")})
    return pipe


def test_pipeline_task_sets_the_prompt_and_the_size(monkeypatch):
    pipe = tiny_pipeline()
    lq = photo("chelsea", (32, 32))
    with pytest.raises(ValueError, match="super-resolution only"):
        pipe(lq, task="denoise", num_inference_steps=1)
    sr = pipe(lq, task="sr", num_inference_steps=1, generator=gen(0)).images[0]
    plain = pipe(lq, num_inference_steps=1, generator=gen(0)).images[0]
    assert sr.size == (128, 128) and np.array_equal(np.asarray(sr), np.asarray(plain))  # an SR adapter: unchanged
    _all_in_one(pipe)
    seen = []
    encode = pipe.encode_prompt
    monkeypatch.setattr(
        pipe, "encode_prompt", lambda prompt, *a, **k: (seen.append(prompt), encode(prompt, *a, **k))[1]
    )
    out = pipe(lq, task="denoise", prompt="a cat", num_inference_steps=1, generator=gen(0)).images[0]
    assert out.size == (32, 32) and seen[-1] == ["a cat, noise-free, clean, smooth"]  # same size, task prompt last
    assert pipe(lq, task="denoise", upscale=2, num_inference_steps=1).images[0].size == (64, 64)
    with pytest.raises(ValueError, match="not trained for task 'desnow'; it knows sr, denoise"):
        pipe(lq, task="desnow", num_inference_steps=1)
    with pytest.raises(ValueError, match="Unknown restoration task 'rain'"):
        pipe(lq, task="rain", num_inference_steps=1)


def test_training_on_mixed_data_uses_task_prompts_and_saves_them(tmp_path):
    from fluxir_hub import FluxIRAdapter
    from training.config import TrainConfig
    from training.data import PairSource, iterate_batches
    from training.trainer import Trainer

    folder = tmp_path / "hq"
    folder.mkdir()
    for i, name in enumerate(("astronaut", "chelsea", "coffee", "rocket")):
        photo(name, (64, 64)).save(folder / f"{i}.png")
    config = TrainConfig(
        pretrained_model="tiny", hq_folder=str(folder), degradation_preset="mixed", crop_sizes=["64x64"],
        max_train_steps=2, rank=4, output_dir=str(tmp_path / "out"), validation_steps=None, report_to="none",
        checkpointing_steps=100, pixel_loss_crop=4, mixed_precision="no", gradient_checkpointing=False,
        train_batch_size=4,
    )  # fmt: skip
    source = PairSource(config)
    assert source.use_task_prompts and source.tasks == sorted(DEFAULT_WEIGHTS)
    batch = next(iterate_batches(config, source))
    assert all(p in {t.prompt for t in TASKS.values()} for p in batch["prompts"])
    assert batch["hq"].shape == batch["lq"].shape == (4, 3, 64, 64)  # SR LQs upsampled, others as they are
    Trainer(config).train()
    adapter = FluxIRAdapter.from_pretrained(tmp_path / "out")
    assert adapter.config.task_prompts == {t: TASKS[t].prompt for t in sorted(DEFAULT_WEIGHTS)}
    off = TrainConfig(**{**config.to_dict(), "task_prompts": "off", "output_dir": str(tmp_path / "off")})
    assert not PairSource(off).use_task_prompts
    with pytest.raises(ValueError, match="`task_prompts` must be auto, on or off"):
        TrainConfig(**{**config.to_dict(), "task_prompts": "yes"}).validate()
    with pytest.raises(ValueError, match="Unknown `degradation_preset` 'rainy'"):
        TrainConfig(**{**config.to_dict(), "degradation_preset": "rainy"}).validate()
    only = TrainConfig(**{**config.to_dict(), "task_weights": "denoise=1,desnow=0"})
    assert PairSource(only).tasks == ["denoise"]
    with pytest.raises(ValueError, match="Unknown restoration task 'haze'"):
        TrainConfig(**{**config.to_dict(), "task_weights": "haze=1"}).validate()
    with pytest.raises(ValueError, match="`task_weights` needs `degradation_preset mixed`"):
        TrainConfig(**{**config.to_dict(), "degradation_preset": "seesr", "task_weights": "sr=1"}).validate()


def test_fluxgen_mixed_build_records_the_task_of_every_pair(tmp_path):
    from datasets import load_dataset

    from dataset_builder.cli import main
    from dataset_builder.config import FluxGenConfig
    from dataset_builder.degrade_stage import degrade_images

    out = tmp_path / "build"
    assert main(["run", "-o", str(out), "--tiny", "--preset", "mixed", "--task-weights", "denoise=1,desnow=1"]) == 0
    ds = load_dataset(str(out / "dataset"))
    rows = list(ds["train"]) + list(ds["validation"])
    assert {row["task"] for row in rows} <= {"denoise", "desnow"}
    for row in rows:
        record = json.loads(row["degradation"])
        assert record["task"] == row["task"] and record["preset"] == "mixed"
        factor = 4 if row["task"] == "sr" else 1
        assert row["lq"].size == (row["hq"].width // factor, row["hq"].height // factor)
    config = FluxGenConfig.load(out)
    assert degrade_images(out, config.degrade, show_progress=False) == 0  # current: nothing redone
    card = (out / "dataset" / "README.md").read_text()
    assert "`desnow`" in card or "`denoise`" in card
    config.degrade.task_weights = {"sr": 1.0}
    assert degrade_images(out, config.degrade, show_progress=False) == len(rows)  # another mix: every LQ remade
    sr_record = json.loads(next((out / "lq").rglob("*.json")).read_text())
    assert sr_record["task"] == "sr" and sr_record["target"] == "usm"  # the seesr pairs keep their sharpened target
    assert main(["degrade", "-o", str(out), "--task-weights", "sr=x"]) != 0
    # The README's command, as written: a new mix on an existing build remakes the LQs and the export (no --resume:
    # only the degrade stage's own settings changed).
    assert main(["degrade", "-o", str(out), "--preset", "mixed", "--task-weights", "low_light=1"]) == 0
    ds = load_dataset(str(out / "dataset"))
    assert {row["task"] for split in ("train", "validation") for row in ds[split]} == {"low_light"}
    assert main(["degrade", "-o", str(out), "--steps", "3"]) == 2  # an upstream setting still needs --resume


def test_eval_builds_a_task_benchmark_and_reports_per_task(tmp_path):
    from fluxir_hub.cli.evaluate import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee"):
        photo(name, (96, 96)).save(photos / f"{name}.png")
    bench = tmp_path / "bench"
    assert main(["build", "tasks", "--source", str(photos), "--count", "1", "--crop", "64", "--tasks",
                 "sr,low_light", "-o", str(bench)]) == 0  # fmt: skip
    manifest = json.loads((bench / "benchmark.json").read_text())
    assert [e["task"] for e in manifest["entries"]] == ["sr", "low_light"]
    sizes = {p.stem.split("_0")[0]: Image.open(p).size for p in (bench / "lq").glob("*.png")}
    assert sizes == {"sr": (16, 16), "low_light": (64, 64)}
    results = tmp_path / "results"
    assert main(["restore", str(bench), "-o", str(results / "tasks" / "bicubic"), "--method", "bicubic"]) == 0
    assert {Image.open(p).size for p in (results / "tasks" / "bicubic").glob("*.png")} == {(64, 64)}
    assert main(["score", "--bench", f"tasks={bench}", "--results", str(results), "--methods", "bicubic",
                 "--metrics", "PSNR", "-o", str(tmp_path / "report")]) == 0  # fmt: skip
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| Tasks / sr | PSNR" in table and "| Tasks / low_light | PSNR" in table
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["tasks/bicubic"]["tasks"]) == {"sr", "low_light"}
    assert main(["build", "tasks", "--source", str(photos), "--tasks", "rain", "-o", str(tmp_path / "x")]) != 0


def test_space_offers_the_adapters_tasks_and_keeps_the_size(tmp_path):
    import gradio as gr

    from demo.app import DemoModel, Restorer, upload_folder

    model = DemoModel(_all_in_one(tiny_pipeline()), "tiny", "", 512 * 512, 1024 * 1024, 0.05, default_steps=1)
    assert model.tasks == ["sr", "denoise"]
    inside = upload_folder() / "test-tasks"
    inside.mkdir(parents=True, exist_ok=True)
    photo("astronaut", (32, 32)).save(inside / "in.png")
    args = ["", 4, 1, 0, False, 0.05, "wavelet", False, 2]
    (_, after), _, _, _ = Restorer(model).restore(str(inside / "in.png"), *args, "denoise")
    assert after.size == (32, 32)  # the client's upscale 4 is ignored for a same-size task
    with pytest.raises(gr.Error, match="Task must be one of sr, denoise"):
        Restorer(model).restore(str(inside / "in.png"), *args, "desnow")
    torch.manual_seed(0)


def test_restore_cli_task_option(tmp_path, capsys):
    from fluxir_hub.cli.restore import main

    photo("coffee", (32, 32)).save(tmp_path / "in.png")
    code = main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--tiny", "--steps", "1", "--task", "desnow"])
    assert code == 2 and "super-resolution only" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.png"))
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "sr"), "--tiny", "--steps", "1", "--task", "sr"]) == 0
    assert Image.open(next((tmp_path / "sr").glob("*.png"))).size == (128, 128)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "in.png"), "-o", str(tmp_path / "x"), "--tiny", "--task", "dehaze"])


def test_colour_changing_tasks_default_to_no_colour_fix_and_no_lq_pull():
    pipe = tiny_pipeline()
    pipe.adapter.register_to_config(task_prompts={"low_light": TASKS["low_light"].prompt})
    lq = photo("chelsea", (32, 32))

    def run(**kwargs):
        return np.asarray(pipe(lq, task="low_light", num_inference_steps=2, generator=gen(0), **kwargs).images[0])

    default = run()
    assert np.array_equal(default, run(color_fix="none", restoration_weight=0.0))
    assert not np.array_equal(default, run(color_fix="wavelet", restoration_weight=0.05))
    assert not TASKS["low_light"].keeps_colors and TASKS["denoise"].keeps_colors


def test_task_prompts_are_cached_in_the_adapter_and_the_loader_skips_text_encoders(tmp_path):
    """An all-in-one adapter carries every task prompt's embeddings: restoring any task needs no text encoder."""
    from diffusers import FluxPipeline

    from fluxir_hub.pipelines import load_restoration_pipeline
    from fluxir_hub.testing import tiny_components

    FluxPipeline(**tiny_components()).save_pretrained(tmp_path / "base")
    pipe = tiny_pipeline()
    lq = photo("chelsea", (32, 32))
    pipe.adapter.set_task_prompts({t: TASKS[t].prompt for t in ("sr", "denoise")})
    pipe.cache_prompt_embeds()
    expected = pipe(lq, task="denoise", num_inference_steps=1, generator=gen(0), output_type="np").images
    assert pipe.adapter.cached_prompts == ["", TASKS["denoise"].prompt, TASKS["sr"].prompt]  # rows in task order
    pipe.adapter.save_pretrained(tmp_path / "adapter")

    def load(**kwargs):
        return load_restoration_pipeline(tmp_path / "base", tmp_path / "adapter", dtype=torch.float32, **kwargs)

    lean = load(task="denoise")
    assert lean.text_encoder is None and lean.text_encoder_2 is None and lean.tokenizer_2 is None
    lean.set_progress_bar_config(disable=True)
    out = lean(lq, task="denoise", num_inference_steps=1, generator=gen(0), output_type="np").images
    np.testing.assert_allclose(out, expected, atol=1e-5)  # the cached task prompt (a wrong row differs by ~0.1)
    with pytest.raises(ValueError, match="needs text_encoder"):
        lean(lq, prompt="a cat", num_inference_steps=1)
    assert load(prompt="a cat").text_encoder_2 is not None  # a prompt of the user's own: encoders load
    assert load(prompt=None).text_encoder_2 is not None  # any prompt may come (the Space's text box)
    with pytest.raises(ValueError, match="not trained for task 'desnow'"):
        load(task="desnow")


def test_a_new_degradation_family_is_one_class_that_records_and_replays():
    """Subclassing `TaskDegradation` with a task registers the family: `degrade` samples it, a record replays by its
    task name alone, and no table elsewhere changes."""
    from dataclasses import dataclass
    from typing import ClassVar

    from fluxir_hub.degradations.family import TaskDegradation, family_of

    @dataclass(frozen=True)
    class Fade(TaskDegradation):
        name: str = "fade"
        strength: tuple[float, float] = (0.2, 0.6)
        task: ClassVar[str] = "fade_test"

        def sample(self, rng, hq_size):
            return {"strength": float(rng.uniform(*self.strength))}

        @staticmethod
        def apply(image, record):
            return image * (1 - record["strength"]) + 0.5 * record["strength"]

    assert family_of("fade_test") is Fade
    hq = photo("coffee", (32, 32))
    result = degrade(hq, Fade(), seed=3)
    assert result.task == "fade_test" and 0.2 <= result.params["fade_test"]["strength"] <= 0.6
    assert np.array_equal(np.asarray(apply_degradation(result.hq, result.params)), np.asarray(result.lq))
    assert np.asarray(result.lq, dtype=float).std() < np.asarray(hq, dtype=float).std()  # it did fade
    with pytest.raises(ValueError, match="task 'fog' is unknown to this version"):
        apply_degradation(hq, {**result.params, "task": "fog"})
