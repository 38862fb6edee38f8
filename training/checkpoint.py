"""Pickle-free training checkpoints: adapter and LoRA as safetensors, optimizer/scheduler/EMA state as safetensors
tensors plus JSON scalars, and the resolved config. The data stream and all noise are seeded by step, so no RNG
state needs saving for an exact resume.

    output_dir/checkpoint-<step>/
        adapter/                      FluxIRAdapter.save_pretrained (loads with from_pretrained)
        pytorch_lora_weights.safetensors  (with use_lora: diffusers LoRA format, pipe.load_lora_weights)
        optimizer.safetensors + optimizer.json
        ema.safetensors (with use_ema)
        trainer_state.json            step, lr scheduler state
        train_config.json
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def _flatten(state: Any, prefix: str, tensors: dict, meta: Any):
    """Split a nested state dict into `tensors` (safetensors) and a JSON skeleton with tensor references."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().contiguous().cpu()
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {"__dict__": [[_key(k), _flatten(v, f"{prefix}.{k}", tensors, meta)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}.{i}", tensors, meta) for i, v in enumerate(state)]}
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
    skeleton = _flatten(state, name, tensors, None)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(skeleton))


def load_state(folder: Path, name: str) -> dict:
    tensors = load_file(str(folder / f"{name}.safetensors"))
    return _unflatten(json.loads((folder / f"{name}.json").read_text()), tensors)


def list_checkpoints(output_dir: Path) -> list[Path]:
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and CHECKPOINT_PATTERN.match(p.name)]
    return sorted(folders, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """`"latest"` -> newest complete checkpoint in `output_dir` (None if there is none); a path -> that folder."""
    if resume is None:
        return None
    if resume == "latest":
        complete = [c for c in list_checkpoints(output_dir) if (c / "trainer_state.json").exists()]
        return complete[-1] if complete else None
    path = Path(resume)
    if not (path / "trainer_state.json").exists():
        raise ValueError(f"{path} is not a complete training checkpoint (no trainer_state.json).")
    return path


def prune_checkpoints(output_dir: Path, total_limit: int | None) -> None:
    """Keep the newest `total_limit` checkpoints."""
    if total_limit is None:
        return
    checkpoints = list_checkpoints(output_dir)
    for old in checkpoints[: max(0, len(checkpoints) - total_limit)]:
        shutil.rmtree(old)
