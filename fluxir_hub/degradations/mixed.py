"""The `mixed` preset: each pair's task is drawn with configurable weights, then degraded by that task's preset.

The default weights follow the authors' all-in-one sampling list (`table.DEFAULT_WEIGHTS`, read from the
families).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from .family import TaskDegradation, family_of
from .realesrgan import SR_PRESETS, DegradationConfig
from .table import DEFAULT_WEIGHTS, get_task


@dataclass(frozen=True)
class MixedConfig:
    name: str = "mixed"
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    sr: DegradationConfig = field(default_factory=lambda: SR_PRESETS["seesr"])  # the super-resolution pairs' preset

    task: ClassVar[str] = "mixed"

    def __post_init__(self):
        for name, weight in self.weights.items():
            get_task(name)
            if not weight >= 0:
                raise ValueError(f"Task weight for {name!r} must be >= 0, got {weight!r}.")
        if not sum(self.weights.values()) > 0:
            raise ValueError("At least one task weight must be positive.")

    @property
    def usm_sharpen(self) -> bool:
        return self.sr.usm_sharpen

    @property
    def sharpen_target(self) -> bool:
        return self.sr.sharpen_target

    def preset_for(self, task: str) -> DegradationConfig | TaskDegradation:
        """The config that degrades a pair of `task`: `sr`, else the task family's defaults."""
        return self.sr if task == "sr" else family_of(task)()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_weights(text: str) -> dict[str, float]:
    """`"sr=5,denoise=2"` -> `{"sr": 5.0, "denoise": 2.0}` (for command lines); unknown tasks are refused."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Task weight {item!r} is not of the form task=weight (e.g. sr=5,denoise=2).")
        get_task(name.strip())
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"Task weight {item!r}: {value!r} is not a number.") from None
    return weights


def draw_task(config: MixedConfig, rng: np.random.Generator) -> str:
    names = sorted(config.weights)  # sorted: the draw does not depend on the dict's order
    weights = np.asarray([config.weights[n] for n in names], dtype=float)
    return str(rng.choice(names, p=weights / weights.sum()))
