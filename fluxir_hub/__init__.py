"""FluxIR Hub: real-world image restoration with FLUX.1 and the FluxIR adapter.

Public classes are re-exported here; diffusers records `fluxir_hub` as the library of saved components in
`model_index.json`, so these names are part of the saved format. Imports are lazy: `import fluxir_hub` does not
import torch or diffusers until a class is used.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# bitsandbytes (a pyiqa dependency, imported by diffusers whenever it is installed) logs a warning while importing on
# CPUs with AVX512-BF16 and has no handler of its own, so Python's last-resort handler printed it on every import of the
# pipeline; since transformers 5.25 installs `kernels`, bitsandbytes' import also asks it for a Hub kernel, which logs
# from "kernels" the same way. A NullHandler makes each behave like a library should: an application that configures
# logging still sees the messages.
for _name in ("bitsandbytes", "kernels"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
del _name

_EXPORTS = {
    "FluxIRAdapter": "fluxir_hub.models.adapter_fluxir",
    "FluxIRAdapterOutput": "fluxir_hub.models.adapter_fluxir",
    "SqueezeExcitation": "fluxir_hub.models.adapter_fluxir",
    "UMMFConditioner": "fluxir_hub.models.conditioning_ummf",
    "DRAAdapter": "fluxir_hub.models.adapter_dra",
    "FluxIRPipeline": "fluxir_hub.pipelines.pipeline_fluxir",
    "FluxIRPipelineOutput": "fluxir_hub.pipelines.pipeline_output",
    "TTSConfig": "fluxir_hub.tts",
    "IQAReward": "fluxir_hub.tts",
}

__all__ = [
    "DRAAdapter",
    "FluxIRAdapter",
    "FluxIRAdapterOutput",
    "FluxIRPipeline",
    "FluxIRPipelineOutput",
    "IQAReward",
    "SqueezeExcitation",
    "TTSConfig",
    "UMMFConditioner",
    "__version__",
]

if TYPE_CHECKING:
    from .models.adapter_dra import DRAAdapter
    from .models.adapter_fluxir import FluxIRAdapter, FluxIRAdapterOutput, SqueezeExcitation
    from .models.conditioning_ummf import UMMFConditioner
    from .pipelines.pipeline_fluxir import FluxIRPipeline
    from .pipelines.pipeline_output import FluxIRPipelineOutput
    from .tts import IQAReward, TTSConfig


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fluxir_hub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
