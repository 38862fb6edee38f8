"""Seeded, replayable degradations for the seven restoration tasks (one module per family).

This package depends only on numpy, scipy, torch and Pillow, so every consumer (FluxGen, training, evaluation)
imports it downward. `from dataset_builder import degrade` keeps working.
"""

from .mixed import MixedConfig, parse_weights
from .presets import (
    PRESETS,
    DegradationResult,
    apply_degradation,
    degrade,
    get_preset,
    record_task,
    sample_degradation,
)
from .realesrgan import DegradationConfig, StageConfig
from .table import DEFAULT_WEIGHTS, FAMILIES, TASKS, RestorationTask, get_task, task_prompt

__all__ = [
    "DEFAULT_WEIGHTS",
    "PRESETS",
    "TASKS",
    "DegradationConfig",
    "DegradationResult",
    "FAMILIES",
    "MixedConfig",
    "RestorationTask",
    "StageConfig",
    "apply_degradation",
    "degrade",
    "get_preset",
    "get_task",
    "parse_weights",
    "record_task",
    "sample_degradation",
    "task_prompt",
]
