"""A resumable optimisation loop for the mini model's pretraining stages (VAE, base generator).

Every step's randomness comes from a generator seeded by `(seed, stage, step)`, so a run killed and resumed from its
last checkpoint ends bit-identical to an uninterrupted one; checkpoints are pickle-free (safetensors + JSON) and hold
the learning-rate schedule's state and the measured curve with the weights.

Two schedules: [`CosineSchedule`] (a fixed number of steps) and [`PlateauSchedule`], which trains at a constant rate
until a validation metric stops rising, then decays and stops: the run ends when the curve flattens, not when a step
count says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from fluxir_hub.files import atomic_write, atomic_write_text

from ..checkpoint import load_state, save_state

StepFn = Callable[[int, torch.Generator], torch.Tensor]
EvalFn = Callable[[], dict[str, float]]


def step_generator(seed: int, stage: str, step: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{stage}/{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


def cosine_lr(step: int, total: int, peak: float, warmup: int = 50, floor: float = 0.02) -> float:
    """Linear warm-up, then cosine decay to `floor * peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class CosineSchedule:
    """`total` steps: warm-up, then cosine decay to `floor * peak`."""

    total: int
    peak: float
    warmup: int = 50
    floor: float = 0.02

    @property
    def max_steps(self) -> int:
        return self.total

    def lr(self, step: int) -> float:
        return cosine_lr(step, self.total, self.peak, self.warmup, self.floor)

    def observe(self, step: int, metrics: dict[str, float]) -> None:
        """Fixed length: measurements change nothing."""

    def done(self, step: int) -> bool:
        return step >= self.total

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""


@dataclass
class PlateauSchedule:
    """
    Warm-up, then the peak rate until the best `monitor` value (higher is better) of the last `window` steps beats the
    best one before them by less than `min_gain` (the best, so one noisy measurement decides nothing); then a linear decay to `floor * peak` over `cooldown_fraction` of the steps done so far, and stop. A
    `max_steps` cap starts the decay early enough to end there.
    """

    peak: float
    monitor: str
    max_steps: int
    warmup: int = 100
    window: int = 1000
    min_gain: float = 0.1
    cooldown_fraction: float = 0.2
    floor: float = 0.02
    cooldown_start: int | None = None
    cooldown_steps: int = 0
    history: list[list[float]] = field(default_factory=list)  # [step, value] of every measurement

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.cooldown_start is None or step < self.cooldown_start:
            return self.peak
        progress = min(1.0, (step - self.cooldown_start) / max(1, self.cooldown_steps))
        return self.peak * (self.floor + (1 - self.floor) * (1 - progress))

    def observe(self, step: int, metrics: dict[str, float]) -> None:
        self.history.append([step, float(metrics[self.monitor])])
        if self.cooldown_start is not None:
            return
        earlier = [value for at, value in self.history if at <= step - self.window]
        recent = [value for at, value in self.history if at > step - self.window]
        flat = step >= self.warmup + self.window and bool(earlier) and max(recent) - max(earlier) < self.min_gain
        cooldown = max(1, round(self.cooldown_fraction * step))
        if flat or step + round(self.cooldown_fraction * self.max_steps) >= self.max_steps:
            self.cooldown_start = step
            self.cooldown_steps = cooldown if flat else self.max_steps - step

    def done(self, step: int) -> bool:
        ended = self.cooldown_start is not None and step >= self.cooldown_start + self.cooldown_steps
        return ended or step >= self.max_steps

    def state_dict(self) -> dict:
        return {"cooldown_start": self.cooldown_start, "cooldown_steps": self.cooldown_steps, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.cooldown_start = state.get("cooldown_start")
        self.cooldown_steps = state.get("cooldown_steps", 0)
        self.history = state.get("history", [])


Schedule = CosineSchedule | PlateauSchedule


@dataclass
class TrainResult:
    losses: list[float]
    curve: list[dict[str, float]]  # {"step", "minutes", **metrics} at every measurement
    schedule: dict

    def summary(self) -> dict:
        return asdict(self) | {"losses": None}


def _save(folder: Path, model, optimizer, step: int, losses, curve, schedule: Schedule, minutes: float) -> None:
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(staging / "model.safetensors", lambda tmp: save_file(state, tmp))
    save_state(optimizer.state_dict(), staging, "optimizer")
    progress = {"step": step, "losses": losses, "curve": curve, "schedule": schedule.state_dict(), "minutes": minutes}
    atomic_write_text(staging / "progress.json", json.dumps(progress))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def train_steps(
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step_fn: StepFn,
    schedule: Schedule,
    seed: int,
    checkpoint_dir: Path,
    checkpoint_every: int = 100,
    max_grad_norm: float = 1.0,
    evaluate: EvalFn | None = None,
    eval_every: int | None = None,
) -> TrainResult:
    """
    Run `step_fn(step, generator) -> loss` until `schedule` is done, resuming from `checkpoint_dir` when it holds a
    checkpoint. With `evaluate`, the model is measured (in eval mode, without gradients) before the first step and
    every `eval_every` steps; the measurements feed the schedule and the returned curve (every checkpoint keeps them).
    """
    start, losses, curve, minutes_before = 0, [], [], 0.0
    if (checkpoint_dir / "progress.json").exists():
        progress = json.loads((checkpoint_dir / "progress.json").read_text())
        model.load_state_dict(load_file(str(checkpoint_dir / "model.safetensors")))
        optimizer.load_state_dict(load_state(checkpoint_dir, "optimizer"))
        start, losses, curve = progress["step"], progress["losses"], progress.get("curve", [])
        schedule.load_state_dict(progress.get("schedule", {}))
        minutes_before = progress.get("minutes", 0.0)
    began = time.perf_counter()

    def minutes() -> float:
        return round(minutes_before + (time.perf_counter() - began) / 60, 2)

    def measure(step: int) -> None:
        model.eval()
        with torch.no_grad():
            metrics = evaluate()
        model.train()
        curve.append({"step": step, "minutes": minutes(), **metrics})
        schedule.observe(step, metrics)

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=schedule.max_steps, initial=start, desc=name)
    if evaluate is not None and start == 0 and not curve:
        measure(0)
    step = start
    while not schedule.done(step):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(step)
        loss = step_fn(step, step_generator(seed, name, step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        postfix = {"loss": f"{sum(losses[-50:]) / len(losses[-50:]):.4f}"}
        measured = evaluate is not None and eval_every and step % eval_every == 0
        if measured:
            measure(step)
            postfix.update({k: f"{v:.2f}" for k, v in curve[-1].items() if k not in ("step", "minutes")})
        bar.set_postfix(postfix)
        bar.update()
        if measured or step % checkpoint_every == 0 or schedule.done(step):
            _save(checkpoint_dir, model, optimizer, step, losses, curve, schedule, minutes())
    bar.close()
    model.eval()
    return TrainResult(losses=losses, curve=curve, schedule=schedule.state_dict())
