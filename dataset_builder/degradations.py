"""Kept for imports written before the degradations moved to `fluxir_hub.degradations` (one module per family)."""

from fluxir_hub.degradations import (  # noqa: F401
    PRESETS,
    TASKS,
    DegradationConfig,
    DegradationResult,
    StageConfig,
    apply_degradation,
    degrade,
    get_preset,
    sample_degradation,
)
from fluxir_hub.degradations.ops import add_noise, filter2d, gaussian_blur, jpeg, resize, usm_sharpen  # noqa: F401
from fluxir_hub.degradations.realesrgan import FORMAT_VERSION, sharpened_target  # noqa: F401
