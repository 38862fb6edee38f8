"""The seven restoration tasks of FLUX-IR (paper 002), one row per degradation family: everything about a task (its
prompt, title, whether it resizes or keeps colours, its share of the `mixed` preset) is on its family's class
([`~fluxir_hub.degradations.family.TaskFamily`]); the task table, the presets and the default mix are read from
[`FAMILIES`]. A new task is a new family class and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .family import TaskFamily
from .low_light import LowLightConfig
from .motion_blur import MotionBlurConfig
from .noise import NoiseConfig
from .raindrop import RaindropConfig
from .realesrgan import DegradationConfig
from .snow import SnowConfig
from .underwater import UnderwaterConfig

FAMILIES: tuple[type[TaskFamily], ...] = (
    DegradationConfig,  # super-resolution
    MotionBlurConfig,
    LowLightConfig,
    UnderwaterConfig,
    NoiseConfig,
    RaindropConfig,
    SnowConfig,
)  # paper 002's order of the tasks


@dataclass(frozen=True)
class RestorationTask:
    """A restoration task: its prompt, the preset that makes its training pairs, and the sampling settings that suit
    it. Tasks whose degradation *is* the colour or brightness (low light, underwater, snow haze) must not copy the
    LQ's colours back (the colour fix) nor pull the latent toward the LQ (the restoration sampling strategy)."""

    name: str
    title: str
    prompt: str
    preset: str  # the degradation preset that makes training pairs for it
    resizes: bool = False  # only super-resolution changes the image size
    keeps_colors: bool = True  # the LQ's colours are right: the wavelet colour fix and the LQ pull are safe

    @property
    def color_fix(self) -> str:
        return "wavelet" if self.keeps_colors else "none"

    @property
    def restoration_weight(self) -> float | None:
        """`None`: the pipeline's default; 0 where pulling toward the LQ would keep its wrong colours."""
        return None if self.keeps_colors else 0.0


TASKS: dict[str, RestorationTask] = {
    family.task: RestorationTask(
        family.task, family.title, family.prompt, family.preset_name(), family.resizes, family.keeps_colors
    )
    for family in FAMILIES
}

# The authors' all-in-one sampling list (`mix_dataset.py`), heaviest first: SR 5 slots, motion blur 2, noise 2, one
# each for the rest; their two outdoor-rain slots are not one of the paper's seven tasks.
DEFAULT_WEIGHTS: dict[str, float] = {
    family.task: family.mix_weight for family in sorted(FAMILIES, key=lambda family: -family.mix_weight)
}


def get_task(name: str) -> RestorationTask:
    if name not in TASKS:
        raise ValueError(f"Unknown restoration task {name!r}; choose one of {', '.join(TASKS)}.")
    return TASKS[name]


def task_prompt(task: str, caption: str = "") -> str:
    """The text an all-in-one model sees for `task`: the task's prompt, after an image caption when there is one."""
    prompt = get_task(task).prompt
    return f"{caption}, {prompt}" if caption else prompt
