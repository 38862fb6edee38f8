"""What a degradation family is: a small class that samples a record and applies one, registered by its task.

A family's config (its parameter ranges) is a frozen dataclass subclassing [`TaskDegradation`]: `sample(rng,
hq_size)` draws the family's part of a record, `apply(image, part)` turns an image into the LQ with no randomness of
its own. Defining a subclass with a `task` registers it, so a record replays by its task name alone
([`family_of`]), and `presets.PRESETS` needs no table of samplers and appliers.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch

_FAMILIES: dict[str, type[TaskDegradation]] = {}


class TaskFamily:
    """
    What a degradation family says about the restoration task it makes pairs for; `table.TASKS`, `table.FAMILIES`'s
    presets and the `mixed` preset's default weights are read from these.

    - `task`: the task's name; `title`: its name for people; `prompt`: the fixed prompt an all-in-one model is
      trained and run with (the authors' code, `../shared/research/flux_ir.md` §3).
    - `resizes`: whether the LQ is smaller than the HQ (only super-resolution).
    - `keeps_colors`: whether the LQ's colours are right, so the colour fix and the pull toward the LQ are safe.
    - `mix_weight`: the task's share in the `mixed` preset (the authors' sampling list).
    - `preset`: the preset that makes the task's training pairs.
    """

    task: ClassVar[str]
    title: ClassVar[str]
    prompt: ClassVar[str]
    resizes: ClassVar[bool] = False
    keeps_colors: ClassVar[bool] = True
    mix_weight: ClassVar[float] = 1.0

    @classmethod
    def preset_name(cls) -> str:
        return cls.task


class TaskDegradation(TaskFamily):
    """Base of the same-size task families (super-resolution, with its own record format, is `realesrgan`)."""

    usm_sharpen: ClassVar[bool] = False  # the target is never unsharp-masked for these tasks
    sharpen_target: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "task" in cls.__dict__:
            _FAMILIES[cls.task] = cls

    def sample(self, rng: np.random.Generator, hq_size: tuple[int, int]) -> dict[str, Any]:
        """The family's part of a record: every random choice, drawn from `rng`."""
        raise NotImplementedError

    @staticmethod
    def apply(image: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        """`(1, 3, H, W)` in [0, 1] -> the degraded image, exactly as `record` (the family's part) says."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def family_of(task: str) -> type[TaskDegradation]:
    """The registered family of a same-size task.

    Raises:
        ValueError: no family has this task (a record from a newer version, say).
    """
    if task not in _FAMILIES:
        raise ValueError(
            f"The record's task {task!r} is unknown to this version; choose one of sr, {', '.join(_FAMILIES)}."
        )
    return _FAMILIES[task]
