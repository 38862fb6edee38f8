"""Training across processes (gloo CPU ranks under `accelerate launch`): the frozen base sharded with FSDP2 trains
as plain DDP does, and a run killed with SIGKILL resumes to the same losses."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fluxir_hub import FluxIRAdapter
from training.checkpoint import load_state, save_state
from training.config import TrainConfig
from training.trainer import Trainer

from .helpers import make_pairs_folder

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs_folder(tmp_path_factory.mktemp("pairs") / "fluxgen", size=(128, 128))


def _config(pairs, out, **kwargs) -> dict:
    return {
        "pretrained_model": "tiny", "dataset": str(pairs), "crop_sizes": [[64, 64]], "max_train_steps": STEPS,
        "rank": 4, "output_dir": str(out), "report_to": "none", "checkpointing_steps": 2, "learning_rate": 1e-3,
        "pixel_loss_crop": 4, "mixed_precision": "no", "gradient_checkpointing": False, "use_ema": True,
        "ema_decay": 0.9, "validation_steps": 4, "num_validation_images": 1, "validation_inference_steps": 1,
        **kwargs,
    }  # fmt: skip


def _command(config: dict, result: Path, processes: int = 2) -> list[str]:
    path = result.with_suffix(".config.json")
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "tests.train_worker", str(path), str(result)]  # fmt: skip


def _env() -> dict:
    # one intra-op thread per rank (as accelerate sets), so every run sums in the same order
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def _train(config: dict, result: Path) -> dict:
    run = subprocess.run(_command(config, result), env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def ddp_run(pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return out, _train(_config(pairs, out), out / "result.json")


def _kill_all(marker: str) -> None:
    """SIGKILL every process whose command line holds `marker` (torch's launcher starts each rank in a session of
    its own, so killing the launcher's group would leave the ranks running)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue  # exited meanwhile


def _losses(result: dict) -> list[float]:
    return [step["loss"] for step in result["history"]]


def test_sharded_base_trains_as_ddp_and_checkpoints_hold_no_base(pairs, ddp_run, tmp_path):
    ddp_out, ddp = ddp_run
    out = tmp_path / "sharded"
    sharded = _train(_config(pairs, out, shard_base=True), tmp_path / "result.json")
    assert sharded["sharded"] and not ddp["sharded"] and sharded["world"] == 2
    assert len(_losses(ddp)) == STEPS
    assert _losses(sharded) == pytest.approx(_losses(ddp), rel=1e-5, abs=1e-6)
    a = FluxIRAdapter.from_pretrained(ddp_out).state_dict()
    b = FluxIRAdapter.from_pretrained(out).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    checkpoint = out / f"checkpoint-{STEPS}"
    files = {p.name for p in checkpoint.iterdir()}
    assert {"adapter", "optimizer.bin", "scheduler.bin", "ema.safetensors", "trainer_state.json"} <= files
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= files  # each process wrote its own
    assert not [name for name in files if name.startswith("model")]  # the frozen base is never written
    assert (out / "validation" / "step-4" / "00.png").exists()  # every rank restored, one wrote


def test_a_killed_run_resumes_to_the_uninterrupted_losses(pairs, ddp_run, tmp_path):
    _, ddp = ddp_run
    out = tmp_path / "killed"
    config = _config(pairs, out, shard_base=True)
    launcher = subprocess.Popen(
        _command(config, tmp_path / "first.json"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (out / "checkpoint-4").exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    _kill_all(str(tmp_path / "first.config.json"))  # the launcher and both ranks, mid-run
    launcher.wait()
    assert not (out / f"checkpoint-{STEPS}").exists(), "the run should have been killed mid-way"
    resumed = _train({**config, "resume_from_checkpoint": "latest"}, tmp_path / "resumed.json")
    done = len(_losses(resumed))
    assert 0 < done <= STEPS - 4
    assert _losses(resumed) == pytest.approx(_losses(ddp)[-done:], rel=1e-5, abs=1e-6)


def test_one_process_shard_base_trains_unsharded_and_the_first_checkpoint_format_resumes(pairs, tmp_path):
    kwargs = {"max_train_steps": 2, "checkpointing_steps": 1, "validation_steps": None, "shard_base": True}
    full = Trainer(TrainConfig(**_config(pairs, tmp_path / "full", **kwargs))).train()
    out = tmp_path / "old"
    Trainer(TrainConfig(**_config(pairs, out, **{**kwargs, "max_train_steps": 1}))).train()
    # rewrite checkpoint-1 as the first format wrote it: optimizer as safetensors + JSON, scheduler in the state
    checkpoint = out / "checkpoint-1"
    optimizer = torch.load(checkpoint / "optimizer.bin", weights_only=True)
    save_state(optimizer, checkpoint, "optimizer")
    scheduler = torch.load(checkpoint / "scheduler.bin", weights_only=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1, "lr_scheduler": scheduler}))
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        (checkpoint / name).unlink()
    assert load_state(checkpoint, "optimizer")["param_groups"][0]["lr"] == 1e-3
    resumed = Trainer(TrainConfig(**_config(pairs, out, **kwargs, resume_from_checkpoint="latest"))).train()
    assert [h["loss"] for h in resumed] == pytest.approx([full[1]["loss"]], rel=1e-5, abs=1e-6)


def test_shard_base_refuses_a_trainable_base(pairs, tmp_path):
    with pytest.raises(ValueError, match="shard_base.*frozen base only"):
        TrainConfig(**_config(pairs, tmp_path, shard_base=True, use_lora=True)).validate()
    with pytest.raises(ValueError, match="shard_base.*not ummf"):
        TrainConfig(**_config(pairs, tmp_path, shard_base=True, conditioning="ummf")).validate()
