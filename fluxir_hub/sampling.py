"""The former name of [`fluxir_hub.restoration_guidance`] (paper 004's pull toward the LQ), kept so old imports work."""

from .restoration_guidance import (  # noqa: F401
    DEFAULT_RESTORATION_THRESHOLD,
    DEFAULT_RESTORATION_WEIGHT,
    RESTORATION_SCHEDULES,
    apply_restoration_guidance,
    restoration_clock,
    restoration_gate,
    total_pull,
)
