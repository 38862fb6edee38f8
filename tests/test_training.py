import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fluxir_hub import FluxIRAdapter
from fluxir_hub.testing import tiny_components, tiny_pipeline
from training import sample_timesteps
from training.cli import main
from training.config import TrainConfig
from training.trainer import Trainer

from .helpers import gen, make_pairs_folder, photo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs_folder(tmp_path_factory.mktemp("pairs") / "fluxgen", size=(128, 128))


def _config(pairs, out, **kwargs):
    base = {
        "pretrained_model": "tiny", "dataset": str(pairs), "crop_sizes": [[64, 64]], "max_train_steps": 3, "rank": 4,
        "output_dir": str(out), "validation_steps": None, "report_to": "none", "checkpointing_steps": 100,
        "learning_rate": 1e-3, "pixel_loss_crop": 4, "mixed_precision": "no", "gradient_checkpointing": False,
    }  # fmt: skip
    return TrainConfig(**{**base, **kwargs})


def test_timestep_sampler_point_masses_and_uniform_interior():
    t = sample_timesteps(100_000, eps=0.05, generator=gen(0))
    assert t.shape == (100_000,) and t.min() == 0 and t.max() == 1
    expected = 0.05 / 1.1  # 0.04545
    assert abs((t == 0).float().mean().item() - expected) < 0.003
    assert abs((t == 1).float().mean().item() - expected) < 0.003
    interior = t[(t > 0) & (t < 1)]
    counts = torch.histc(interior, bins=10, min=0, max=1)
    assert (counts / counts.mean() - 1).abs().max() < 0.05  # flat within 5 % per bin
    assert torch.equal(sample_timesteps(8, generator=gen(1)), sample_timesteps(8, generator=gen(1)))


def test_three_steps_from_a_fluxgen_folder_give_a_loadable_adapter(pairs, tmp_path):
    out = tmp_path / "run"
    history = Trainer(_config(pairs, out, validation_steps=3, num_validation_images=1, validation_inference_steps=2,
                              validation_metrics=["piqe"])).train()  # fmt: skip
    assert len(history) == 3 and all(np.isfinite(h["loss"]) and h["loss_pixel"] > 0 for h in history)
    adapter = FluxIRAdapter.from_pretrained(out)
    assert adapter.has_empty_prompt_embeds and adapter.config.rank == 4
    pipe = tiny_pipeline()
    pipe.adapter = adapter
    image = pipe(photo(size=(16, 16)), upscale=4, num_inference_steps=2, generator=gen()).images[0]
    assert image.size == (64, 64)
    assert sorted(p.name for p in (out / "validation" / "step-3").iterdir()) == ["00.png", "00_lq.png"]
    card = (out / "README.md").read_text()
    assert "fluxir" in card and "image-restoration" in card and "train_config.json" in card
    assert json.loads((out / "train_config.json").read_text())["max_train_steps"] == 3


def test_overfits_two_fixed_pairs_and_leaves_the_base_untouched(tmp_path):
    pairs = make_pairs_folder(tmp_path / "two", size=(64, 64))
    base_before = {k: v.clone() for k, v in tiny_components()["transformer"].state_dict().items()}
    trainer = Trainer(_config(pairs, tmp_path / "fit", max_train_steps=300, rank=32, learning_rate=3e-3,
                              pixel_loss_weight=0.0, train_batch_size=2, prompt_drop_rate=0.0))  # fmt: skip
    history = trainer.train()
    losses = [h["loss"] for h in history]
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert all(torch.count_nonzero(se.excitation.weight) > 0 for se in trainer.adapter.image_se)
    for key, value in trainer.models.transformer.state_dict().items():
        assert torch.equal(value, base_before[key]), key


def test_resume_from_latest_continues_exactly(pairs, tmp_path):
    kwargs = {"checkpointing_steps": 2, "max_train_steps": 4, "use_ema": True, "ema_decay": 0.9}
    full = [h["loss"] for h in Trainer(_config(pairs, tmp_path / "full", **kwargs)).train()]
    Trainer(_config(pairs, tmp_path / "split", **{**kwargs, "max_train_steps": 2})).train()
    resumed = Trainer(_config(pairs, tmp_path / "split", **kwargs, resume_from_checkpoint="latest")).train()
    assert [h["loss"] for h in resumed] == pytest.approx(full[2:], rel=1e-5, abs=1e-6)
    a = FluxIRAdapter.from_pretrained(tmp_path / "full").state_dict()
    b = FluxIRAdapter.from_pretrained(tmp_path / "split").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_limit_and_incomplete_checkpoints(pairs, tmp_path):
    out = tmp_path / "limit"
    Trainer(_config(pairs, out, checkpointing_steps=1, checkpoints_total_limit=2, max_train_steps=3)).train()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    (out / "checkpoint-3" / "trainer_state.json").unlink()  # as if killed while writing
    from training.checkpoint import resolve_resume

    assert resolve_resume(out, "latest")[0].name == "checkpoint-2"


def test_damaged_checkpoint_falls_back_to_the_one_before(pairs, tmp_path, caplog):
    out = tmp_path / "damaged"
    kwargs = {"checkpointing_steps": 1, "max_train_steps": 2}
    Trainer(_config(pairs, out, **kwargs)).train()
    optimizer = out / "checkpoint-2" / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # truncated after the fact
    assert not list(out.glob(".*partial"))  # every published checkpoint folder was complete
    resumed = Trainer(_config(pairs, out, **{**kwargs, "max_train_steps": 3}, resume_from_checkpoint="latest"))
    history = resumed.train()
    assert len(history) == 2  # steps 2 and 3, from checkpoint-1
    assert "checkpoint-2 is damaged" in caplog.text
    for name in ("checkpoint-2", "checkpoint-3"):
        assert (out / name / "trainer_state.json").exists()


def test_8bit_adam_checkpoints_and_resumes(pairs, tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "adam8"
    kwargs = {"checkpointing_steps": 1, "max_train_steps": 1, "use_8bit_adam": True, "rank": 64}
    Trainer(_config(pairs, out, **kwargs)).train()
    assert (out / "checkpoint-1" / "optimizer.bin").exists()
    history = Trainer(_config(pairs, out, **{**kwargs, "max_train_steps": 2}, resume_from_checkpoint="latest")).train()
    assert len(history) == 1 and np.isfinite(history[0]["loss"])


def test_damaged_and_small_training_images_are_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "hq"
    folder.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        photo(name, (128, 128)).save(folder / f"{name}.png")
    data = (folder / "chelsea.png").read_bytes()
    (folder / "chelsea.png").write_bytes(data[: len(data) // 2])  # truncated
    photo("coffee", (32, 32)).save(folder / "tiny.png")  # smaller than the crop
    config = _config(
        None, tmp_path / "out", dataset=None, hq_folder=str(folder), max_train_steps=6, pixel_loss_weight=0.0
    )
    history = Trainer(config).train()
    assert len(history) == 6 and all(np.isfinite(h["loss"]) for h in history)
    assert "chelsea.png" in caplog.text and "tiny.png" in caplog.text and "smaller than the crop" in caplog.text


def test_lora_is_saved_in_diffusers_format_and_changes_the_pipeline(pairs, tmp_path):
    out = tmp_path / "lora"
    Trainer(_config(pairs, out, use_lora=True, lora_rank=4, max_train_steps=3, learning_rate=1e-2)).train()
    assert (out / "pytorch_lora_weights.safetensors").exists()
    pipe = tiny_pipeline()
    pipe.adapter = FluxIRAdapter.from_pretrained(out)
    lq = photo(size=(16, 16))
    before = pipe(lq, upscale=4, num_inference_steps=2, generator=gen(), output_type="pt").images
    pipe.load_lora_weights(out)
    after = pipe(lq, upscale=4, num_inference_steps=2, generator=gen(), output_type="pt").images
    assert (before - after).abs().max() > 1e-4


def test_two_processes_complete_and_save_one_adapter(pairs, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.cli", "--pretrained_model", "tiny",
           "--dataset", str(pairs), "--crop_sizes", "64x64", "--max_train_steps", "2", "--rank", "4",
           "--output_dir", str(out), "--report_to", "none", "--mixed_precision", "no",
           "--gradient_checkpointing", "false"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Trained 2 step(s)") == 2  # both ranks ran the loop
    import re

    losses = re.findall(r"final loss (\d+\.\d+)", result.stdout)
    assert len(losses) == 2 and losses[0] == losses[1]  # the logged loss is the mean over ranks, the same on each
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == [
        "diffusion_pytorch_model.safetensors"
    ]
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    FluxIRAdapter.from_pretrained(out)


def test_push_uploads_adapter_without_checkpoints(pairs, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, repo_type, exist_ok))
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, repo_id, folder_path, repo_type=None, ignore_patterns=None, commit_message=None):
            calls.append(("upload_folder", repo_id, repo_type, ignore_patterns))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "pushed"
    Trainer(
        _config(pairs, out, max_train_steps=1, checkpointing_steps=1, push_to_hub=True, hub_model_id="me/a")
    ).train()
    assert calls[0] == ("create_repo", "me/a", "model", True)
    assert calls[1][:3] == ("upload_folder", "me/a", "model") and "checkpoint-*" in calls[1][3]
    assert "me/a" in (out / "README.md").read_text()


def test_bad_input(pairs, tmp_path, capsys):
    plain = tmp_path / "plain"
    from datasets import Dataset

    (plain / "data").mkdir(parents=True)
    Dataset.from_dict({"text": ["a", "b"]}).to_parquet(str(plain / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(ValueError, match="needs image columns 'hq' and 'lq'"):
        Trainer(_config(plain, tmp_path / "a")).train()
    with pytest.raises(ValueError, match="smaller than the crop 256x256"):
        Trainer(_config(pairs, tmp_path / "b", crop_sizes=[[256, 256]])).train()
    assert main(["--pretrained_model", "tiny", "--dataset", str(pairs), "--learning_rat", "1"]) == 2
    assert "['--learning_rat', '1']" in capsys.readouterr().err  # refused, not taken for --learning_rate
    config_file = tmp_path / "c.yaml"
    config_file.write_text("dataset: x\nbogus: 1\n")
    assert main(["--config", str(config_file)]) == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(ValueError, match="multiple of 64"):
        _config(pairs, tmp_path / "d", crop_sizes=[[96, 64]]).validate()

    for argv, message in (
        (["--max_train_steps", "abc"], "invalid int value: 'abc'"),
        (["--seed", str(2**64)], "`seed` must be from 0 to 2**63 - 1"),
        (["--seed", "2**64"], "invalid int value: '2**64'"),
        (["--checkpoints_total_limit", "0"], "would delete every checkpoint"),
        (["--learning_rate", "nan"], "`learning_rate` must be a finite"),
    ):
        assert main(["--pretrained_model", "tiny", "--dataset", str(pairs), *argv]) == 2
        assert message in capsys.readouterr().err
    # every configuration problem in one message, before anything is loaded
    assert main(["--pretrained_model", "tiny", "--conditioning", "bogus", "--rl_alpha", "0.5", "2"]) == 2
    err = capsys.readouterr().err
    assert "3 problems in the training configuration" in err
    assert "Give exactly one data source" in err and "`conditioning` must be" in err and "`rl_alpha` must be" in err
    assert _config(pairs, tmp_path / "e", learning_rate=1e-5).learning_rate == 1e-5
    from training.config import parse_overrides

    assert parse_overrides(TrainConfig(), ["learning_rate=1e-5"]).learning_rate == 1e-5  # YAML alone reads text

    out = tmp_path / "resume"
    Trainer(_config(pairs, out, max_train_steps=1, checkpointing_steps=1)).train()
    with pytest.raises(ValueError, match="different settings: learning_rate: 0.001 -> 0.5"):
        Trainer(_config(pairs, out, max_train_steps=2, learning_rate=0.5, resume_from_checkpoint="latest"))


def test_pixel_loss_forms_vanish_for_an_exact_prediction_and_not_otherwise():
    from training.losses import interpolate, pixel_loss

    decode = tiny_components()["vae"].decode
    g = gen(0)
    z0, z1 = torch.randn(2, 16, 4, 4, generator=g), torch.randn(2, 16, 4, 4, generator=g)
    t = torch.tensor([0.3, 0.8])
    z_t, v = interpolate(z0, z1, t), z1 - z0

    def dec(x):
        return decode(x).sample

    for form in ("printed", "x0"):
        assert pixel_loss(dec, z0, z_t, v, v, t, form).item() == pytest.approx(0.0, abs=1e-6)
        assert pixel_loss(dec, z0, z_t, v + 0.5, v, t, form).item() > 1e-3
    with pytest.raises(ValueError, match="printed' or 'x0"):
        pixel_loss(dec, z0, z_t, v, v, t, "other")


def test_streaming_accumulation_and_prompts(tmp_path):
    pairs = make_pairs_folder(tmp_path / "prompted", names=("astronaut", "chelsea", "coffee", "rocket"),
                              size=(64, 64))  # fmt: skip
    trainer = Trainer(_config(pairs, tmp_path / "stream", streaming=True, gradient_accumulation_steps=2,
                              max_train_steps=2, pixel_loss_form="x0", dataloader_shuffle_buffer=4))  # fmt: skip
    history = trainer.train()
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert trainer.pipe.text_encoder_2 is not None  # a streamed dataset may carry prompts: encoders kept
    plain = Trainer(_config(pairs, tmp_path / "plain", max_train_steps=1))
    plain.train()
    assert plain.pipe.text_encoder_2 is None  # all prompts empty: the cached embedding suffices, T5 freed


def test_learning_rate_schedule_follows_optimizer_steps(pairs, tmp_path):
    history = Trainer(_config(pairs, tmp_path / "warmup", max_train_steps=4, lr_scheduler="linear", lr_warmup_steps=2,
                              gradient_accumulation_steps=2, learning_rate=1e-3)).train()  # fmt: skip
    # linear warm-up over 2 optimizer steps, then linear decay to 0 at step 4 (accumulation does not advance it)
    assert [round(h["lr"], 6) for h in history] == [0.0005, 0.001, 0.0005, 0.0]


def test_center_crops_sit_in_the_middle_on_the_lq_grid():
    from training.data import Pair, crop_pair

    hq = photo("astronaut", (200, 136))
    pair = Pair(hq, hq.resize((50, 34)), "", "x")
    config = TrainConfig(dataset="x", crop_sizes=[[64, 64]], crop_mode="center", scale=4)
    a, _ = crop_pair(pair, (64, 64), np.random.default_rng(0), config, 0)
    b, _ = crop_pair(pair, (64, 64), np.random.default_rng(1), config, 0)
    assert torch.equal(a, b)  # no randomness in the position
    from training.data import to_tensor

    expected = to_tensor(hq.crop((68, 36, 132, 100)))  # (200 - 64) / 2 = 68, (136 - 64) / 2 = 36, multiples of 4
    torch.testing.assert_close(a, expected)
    with pytest.raises(ValueError, match="crop_mode"):
        TrainConfig(dataset="x", crop_mode="middle").validate()


def test_model_card_metadata_licence_and_gallery(tmp_path):
    from huggingface_hub import ModelCard

    from training.hub import write_model_card

    validation = tmp_path / "validation" / "step-10"
    validation.mkdir(parents=True)
    for name in ("00", "00_lq", "01", "01_lq"):
        photo(size=(8, 8)).save(validation / f"{name}.png")
    flux = TrainConfig(pretrained_model="black-forest-labs/FLUX.1-dev", dataset="me/pairs", use_lora=True)
    card = ModelCard.load(write_model_card(tmp_path, flux, 10, validation))
    meta = card.data.to_dict()
    assert meta["license"] == "other" and meta["license_name"] == "flux-1-dev-non-commercial-license"
    assert meta["license_link"].endswith("FLUX.1-dev/blob/main/LICENSE.md")
    assert meta["base_model"] == "black-forest-labs/FLUX.1-dev" and meta["base_model_relation"] == "adapter"
    assert "lora" in meta["tags"] and meta["datasets"] == ["me/pairs"]
    assert "pip install fluxir-hub" in card.text and "load_lora_weights" in card.text
    assert "![restored](gallery/01.png)" in card.text and (tmp_path / "gallery" / "01_lq.png").exists()

    local = tmp_path / "base-folder"
    local.mkdir()
    other = TrainConfig(pretrained_model=str(local), dataset=str(tmp_path))
    meta = ModelCard.load(write_model_card(tmp_path / "b", other, 1)).data.to_dict()
    assert "base_model" not in meta and meta["license"] == "apache-2.0"  # never a local path as base_model


def test_cli_options_are_typed_with_help_and_the_file_sets_defaults(pairs, tmp_path, capsys):
    from training.cli import build_parser, parse_config

    help_text = build_parser().format_help()
    for option in ("--learning_rate", "--crop_sizes", "--use_lora", "--max_train_steps", "--config", "--version"):
        assert option in help_text, option
    assert "(paper 001 Eq. 5-6)" in " ".join(help_text.split())  # each option carries its help
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"dataset: {pairs}\nlearning_rate: 2.0e-4\ncrop_sizes: [[64, 64]]\nrank: 8\n")
    config, _ = parse_config(["--config", str(config_file), "--learning_rate", "1e-5", "--use_lora", "true"])
    assert config.learning_rate == 1e-5 and config.rank == 8 and config.use_lora is True  # option beats file
    assert config.conditioning_options == {"rank": 8}  # the old flat key of a file: the kind's option
    for argv, rank in ([], 8), (["--rank", "4"], 4), (["--conditioning_options", "{rank: 2}"], 2):
        assert parse_config(["--config", str(config_file), *argv])[0].conditioning_options == {"rank": rank}, argv
    assert "conditioning_options: rank=32" in " ".join(help_text.split())  # each kind's options listed
    assert config.crop_pairs == [(64, 64)] and config.crop_sizes == ["64x64"]
    assert main(["--version"]) == 0 and "fluxir-train" in capsys.readouterr().out


def test_push_failure_is_one_clear_line(pairs, tmp_path, capsys, monkeypatch):
    import huggingface_hub
    import requests
    from huggingface_hub.errors import HfHubHTTPError

    class NoAuth:
        """An HfApi whose token the Hub refuses."""

        def __init__(self, token=None):
            self.token = token

        def create_repo(self, *args, **kwargs):
            response = requests.Response()
            response.status_code = 401
            raise HfHubHTTPError("401 Client Error: Unauthorized", response=response)

    monkeypatch.setattr(huggingface_hub, "HfApi", NoAuth)
    out = tmp_path / "noauth"
    argv = ["--pretrained_model", "tiny", "--dataset", str(pairs), "--crop_sizes", "64x64", "--max_train_steps", "1",
            "--rank", "4", "--output_dir", str(out), "--report_to", "none", "--push_to_hub", "true",
            "--hub_model_id", "me/a", "--mixed_precision", "no", "--gradient_checkpointing", "false",
            "--pixel_loss_crop", "4"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "upload to me/a failed" in err and "hf auth login" in err and "Traceback" not in err
    assert (out / "diffusion_pytorch_model.safetensors").exists()  # nothing lost


def test_training_steps_on_cuda_leave_cudnn_attention_out():
    # cuDNN attention's backward failed at FLUX.1-dev size on an H200 (torch 2.11); training must not select it.
    from training.model import training_attention_backends

    assert torch.backends.cuda.cudnn_sdp_enabled()
    with training_attention_backends(torch.device("cuda")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled()
    with training_attention_backends("cpu"):
        assert torch.backends.cuda.cudnn_sdp_enabled()


def test_dataloader_workers_give_the_same_batches_and_losses(pairs, tmp_path):
    import itertools

    from training.data import PairSource, iterate_batches, training_batches

    config = _config(pairs, tmp_path / "w", dataloader_num_workers=2, train_batch_size=1)
    source = PairSource(config)
    expected = list(itertools.islice(iterate_batches(config, source, skip=1), 5))
    got = list(itertools.islice(training_batches(config, source, skip=1), 5))
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a["hq"], b["hq"]) and torch.equal(a["lq"], b["lq"]) and a["prompts"] == b["prompts"]
    plain = Trainer(_config(pairs, tmp_path / "plain", train_batch_size=1)).train()
    workers = Trainer(config).train()
    assert [h["loss"] for h in workers] == [h["loss"] for h in plain]
    with pytest.raises(ValueError, match="`dataloader_num_workers` needs a local dataset"):
        _config(pairs, tmp_path / "s", dataloader_num_workers=2, streaming=True).validate()


def test_a_stage_registered_in_a_test_trains_with_no_other_edit(pairs, tmp_path, monkeypatch):
    from training import stages

    monkeypatch.setattr(stages, "_STAGES", dict(stages.training_stages()))  # the registration ends with the test
    prepared, steps = [], []

    @stages.register_stage
    class VelocityOnly(stages.TrainingStage):
        name = "velocity-only"
        help = "a test stage"
        card_loss = "velocity MSE x {{ config.learning_rate }}"

        def __init__(self, base):
            self.base = base

        @classmethod
        def from_trainer(cls, trainer, base):
            return cls(base)

        def loss(self, batch):
            loss, logs, _, _ = self.base.velocity_terms(batch)
            return loss, {**logs, "loss": loss.item()}

        def prepare(self, trainer):
            prepared.append(trainer.resumed)

        def after_optimizer_step(self, step):
            steps.append(step)

    out = tmp_path / "custom"
    history = Trainer(_config(pairs, out, stage="velocity-only", max_train_steps=2)).train()
    assert [set(h) for h in history] == [{"loss", "loss_mse", "lr"}] * 2  # no pixel loss: the stage left it off
    assert prepared == [False] and steps == [1, 2]
    assert "| loss | velocity MSE x 0.001 |" in (out / "README.md").read_text()
    from training.cli import registered_choices

    assert "velocity-only (a test stage)" in registered_choices()  # `fluxir-train --help` lists it
    with pytest.raises(ValueError, match="'adapter', 'rl', 'distill' or 'velocity-only', got 'nope'"):
        _config(pairs, out, stage="nope").validate()
