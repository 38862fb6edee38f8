"""FluxGen: synthetic LQ/HQ restoration pairs from a FLUX text-to-image model (paper 001 §3.1)."""

from fluxir_hub.degradations import (
    PRESETS,
    DegradationConfig,
    DegradationResult,
    StageConfig,
    apply_degradation,
    degrade,
    sample_degradation,
)

__all__ = [
    "PRESETS",
    "DegradationConfig",
    "DegradationResult",
    "StageConfig",
    "apply_degradation",
    "degrade",
    "sample_degradation",
]
