"""A resumable optimisation loop for the mini model's pretraining stages (VAE, base generator).

Every step's randomness comes from a generator seeded by `(seed, stage, step)`, so a run killed and resumed from its
last checkpoint ends bit-identical to an uninterrupted one; checkpoints are pickle-free (safetensors + JSON) and hold
the learning-rate schedule's state and the measured curve with the weights.

Two schedules: [`CosineSchedule`] (a fixed number of steps) and [`PlateauSchedule`], which halves the rate each time
a validation metric stops rising and stops when it has flattened at the lowest rate: the run ends when the curve
flattens, not when a step count says so.
"""

from __future__ import annotations

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
from ..seeding import torch_generator

StepFn = Callable[[int, torch.Generator], torch.Tensor]
EvalFn = Callable[[], dict[str, float]]


def step_generator(seed: int, stage: str, step: int) -> torch.Generator:
    return torch_generator(seed, stage, step)


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
    Warm-up, then the peak rate, multiplied by `decay` whenever the validation curve flattens, until it has decayed
    `decays` times and flattens once more: then the run stops. Flat: the best `monitor` value (higher is better) of the
    last `window` steps beats the best one before them by less than `min_gain` (the best, so one noisy measurement
    decides nothing). `max_steps` caps the run.
    """

    peak: float
    monitor: str
    max_steps: int
    warmup: int = 100
    window: int = 500
    min_gain: float = 0.1
    decay: float = 0.5
    decays: int = 4
    decayed_at: list[int] = field(default_factory=list)  # the steps where the rate was cut
    stopped_at: int | None = None
    history: list[list[float]] = field(default_factory=list)  # [step, value] of every measurement

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        return self.peak * self.decay ** sum(1 for at in self.decayed_at if at <= step)

    def observe(self, step: int, metrics: dict[str, float]) -> None:
        self.history.append([step, float(metrics[self.monitor])])
        since = self.decayed_at[-1] if self.decayed_at else self.warmup
        if self.stopped_at is not None or step < since + self.window:  # each rate gets a full window
            return
        earlier = [value for at, value in self.history if at <= step - self.window]
        recent = [value for at, value in self.history if at > step - self.window]
        if earlier and recent and max(recent) - max(earlier) < self.min_gain:
            if len(self.decayed_at) == self.decays:
                self.stopped_at = step
            else:
                self.decayed_at.append(step)

    def done(self, step: int) -> bool:
        return (self.stopped_at is not None and step >= self.stopped_at) or step >= self.max_steps

    def state_dict(self) -> dict:
        return {"decayed_at": self.decayed_at, "stopped_at": self.stopped_at, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.decayed_at = list(state.get("decayed_at", []))
        self.stopped_at = state.get("stopped_at")
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
