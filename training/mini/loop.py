"""A resumable optimisation loop for the mini model's pretraining stages (VAE, base generator).

Every step's randomness comes from a generator seeded by `(seed, stage, step)`, so a run killed and resumed from its
last checkpoint ends bit-identical to an uninterrupted one; checkpoints are pickle-free (safetensors + JSON).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from fluxir_hub.files import atomic_write, atomic_write_text

from ..checkpoint import load_state, save_state

StepFn = Callable[[int, torch.Generator], torch.Tensor]


def step_generator(seed: int, stage: str, step: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{stage}/{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


def cosine_lr(step: int, total: int, peak: float, warmup: int = 50, floor: float = 0.02) -> float:
    """Linear warm-up, then cosine decay to `floor * peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, losses: list[float]):
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(staging / "model.safetensors", lambda tmp: save_file(state, tmp))
    save_state(optimizer.state_dict(), staging, "optimizer")
    atomic_write_text(staging / "progress.json", json.dumps({"step": step, "losses": losses}))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def train_steps(
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step_fn: StepFn,
    total_steps: int,
    peak_lr: float,
    seed: int,
    checkpoint_dir: Path,
    checkpoint_every: int = 100,
    max_grad_norm: float = 1.0,
) -> list[float]:
    """
    Run `step_fn(step, generator) -> loss` for `total_steps`, resuming from `checkpoint_dir` when it holds a
    checkpoint. Returns every step's loss (including those of earlier, interrupted runs).
    """
    start, losses = 0, []
    if (checkpoint_dir / "progress.json").exists():
        progress = json.loads((checkpoint_dir / "progress.json").read_text())
        model.load_state_dict(load_file(str(checkpoint_dir / "model.safetensors")))
        optimizer.load_state_dict(load_state(checkpoint_dir, "optimizer"))
        start, losses = progress["step"], progress["losses"]
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total_steps, initial=start, desc=name)
    for step in range(start, total_steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total_steps, peak_lr)
        loss = step_fn(step, step_generator(seed, name, step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        bar.update()
        if (step + 1) % checkpoint_every == 0 or step + 1 == total_steps:
            _save(checkpoint_dir, model, optimizer, step + 1, losses)
    bar.close()
    model.eval()
    return losses
