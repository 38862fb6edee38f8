"""Training checkpoints, written by every process through `accelerator.save_state` (so optimizer state sharded by
DeepSpeed or FSDP is saved whole), with the adapter itself as safetensors in place of the prepared module (whose
state would hold the whole frozen base). The data stream and all noise are seeded by step, so a resumed run
continues exactly.

    output_dir/checkpoint-<step>/
        adapter/                      FluxIRAdapter.save_pretrained (loads with from_pretrained)
        pytorch_lora_weights.safetensors  (with use_lora: diffusers LoRA format, pipe.load_lora_weights)
        ema.safetensors + ema.json    (with use_ema)
        optimizer.bin, scheduler.bin, random_states_<rank>.pkl   accelerate's own files (local resume state; the
                                      optimizer and scheduler load with `weights_only`)
        train_config.json
        trainer_state.json            the step; written last, so a checkpoint without it is incomplete

Checkpoints of the first format (`optimizer.safetensors` + `optimizer.json`, the scheduler in trainer_state.json)
still resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fluxir_hub.files import atomic_write, atomic_write_text

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def _flatten(state: Any, prefix: str, tensors: dict, seen: dict[int, str]):
    """
    Split a nested state dict into `tensors` (safetensors) and a JSON skeleton with tensor references.

    Each tensor is stored once as its own copy: one tensor referenced from several places (bitsandbytes' 8-bit
    Adam shares its quantisation maps between parameters) becomes one entry referenced twice, and no two entries share
    memory (safetensors refuses that).
    """
    if isinstance(state, torch.Tensor):
        if id(state) not in seen:
            seen[id(state)] = prefix
            tensors[prefix] = state.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": seen[id(state)]}
    if isinstance(state, dict):
        return {"__dict__": [[_key(k), _flatten(v, f"{prefix}.{k}", tensors, seen)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}.{i}", tensors, seen) for i, v in enumerate(state)]}
    return state


def _key(key):
    return {"__int__": key} if isinstance(key, int) else key


def _unflatten(skeleton: Any, tensors: dict):
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {(k["__int__"] if isinstance(k, dict) else k): _unflatten(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, dict) and "__list__" in skeleton:
        return [_unflatten(v, tensors) for v in skeleton["__list__"]]
    return skeleton


def save_state(state: dict, folder: Path, name: str) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, name, tensors, {})
    atomic_write(folder / f"{name}.safetensors", lambda tmp: save_file(tensors, tmp))
    atomic_write_text(folder / f"{name}.json", json.dumps(skeleton))


def load_state(folder: Path, name: str) -> dict:
    tensors = load_file(str(folder / f"{name}.safetensors"))
    return _unflatten(json.loads((folder / f"{name}.json").read_text()), tensors)


def staging_path(folder: Path) -> Path:
    """Where a checkpoint is written before [`publish_checkpoint`] renames it into place, so a checkpoint folder
    under its final name is always complete."""
    return folder.with_name(f".{folder.name}.partial")


def staging_folder(folder: Path) -> Path:
    """[`staging_path`], created empty."""
    staging = staging_path(folder)
    if staging.exists():  # left by a killed run
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish_checkpoint(staging: Path, folder: Path) -> None:
    if folder.exists():  # the same step saved again after a resume from an earlier checkpoint
        shutil.rmtree(folder)
    os.replace(staging, folder)


def list_checkpoints(output_dir: Path) -> list[Path]:
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and CHECKPOINT_PATTERN.match(p.name)]
    return sorted(folders, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def resolve_resume(output_dir: Path, resume: str | None) -> list[Path]:
    """
    Checkpoints to try, best first: for `"latest"`, every complete checkpoint in `output_dir` from the newest down
    (the trainer falls back to an older one when a newer one turns out damaged); for a path, just that folder.
    """
    if resume is None:
        return []
    if resume == "latest":
        return [c for c in reversed(list_checkpoints(output_dir)) if (c / "trainer_state.json").exists()]
    path = Path(resume)
    if not (path / "trainer_state.json").exists():
        raise ValueError(f"{path} is not a complete training checkpoint (no trainer_state.json).")
    return [path]


def prune_checkpoints(output_dir: Path, total_limit: int | None) -> None:
    """Keep the newest `total_limit` checkpoints."""
    if total_limit is None:
        return
    checkpoints = list_checkpoints(output_dir)
    for old in checkpoints[: max(0, len(checkpoints) - total_limit)]:
        shutil.rmtree(old)


def load_ema(ema, folder: Path, device: torch.device | str) -> None:
    """Load an `EMAModel`'s state from a checkpoint, then move it to `device`: `load_state_dict` rebuilds the shadow
    weights from the (CPU) state, so moving first would leave them on the CPU beside parameters on the GPU."""
    ema.load_state_dict(load_state(folder, "ema"))
    ema.to(device)
