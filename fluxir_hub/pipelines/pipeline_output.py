from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class FluxIRPipelineOutput(BaseOutput):
    """
    Output of [`FluxIRPipeline`].

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The restored images: PIL images, a `(batch, height, width, 3)` array or a `(batch, 3, height, width)`
            tensor in [0, 1], or packed latents for `output_type="latent"`.
        nfe (`int`):
            Number of function evaluations: full-latent velocity predictions (adapter + transformer) the call ran.
            A tiled step counts once.
        tts_rewards (`list[list[float]]`, *optional*):
            With test-time scaling, the reward of the chosen candidate at each branching step, one list per image.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    nfe: int = 0
    tts_rewards: list[list[float]] | None = field(default=None)
