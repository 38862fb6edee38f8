"""Reward-guided test-time scaling for restoration (ResFlow-Tuner, paper 003): greedy path selection with a
multi-step partial denoising estimate (MSPDE).

At each branching step `i` (flow time `s_i`), the pipeline has the latent `z` and its velocity `v`. It forms `N`
candidates: the plain continuation `z` itself, and `N - 1` re-noised estimates `(1 - s_i) x0 + s_i eps_n` of the
predicted clean latent `x0 = z - s_i v`, each with fresh noise `eps_n`. Every candidate takes the step to `s_{i+1}`;
then `k` coarse Euler steps from `s_{i+1}` to 0 estimate where it would end, that estimate is decoded and scored by
the reward, and the best candidate (per image) continues. Cost, in transformer evaluations (NFE):

    NFE = num_inference_steps + len(branch_steps) * ((N - 1) + N * k)      (N > 1; plain NFE when N == 1)

A reward maps `(images, lq)`, both `(B, 3, H, W)` in [0, 1] at the same size, to `(B,)` scores (higher is better).
[`IQAReward`] is the default: weighted, range-normalised pyiqa no-reference metrics plus a fidelity term against the
LQ, so the search cannot win by hallucinating content the LQ does not support.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

Reward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# pyiqa metrics with their usual output range, to put them on a common [0, 1] scale (higher = better).
METRIC_RANGES: dict[str, tuple[float, float, bool]] = {
    # name: (low, high, lower_is_better)
    "musiq": (0.0, 100.0, False),
    "clipiqa+": (0.0, 1.0, False),
    "clipiqa+_vitL14_512": (0.0, 1.0, False),
    "maniqa": (0.0, 1.0, False),
    "maniqa-pipal": (0.0, 1.0, False),
    "piqe": (0.0, 100.0, True),
    "entropy": (0.0, 8.0, False),
    "niqe": (0.0, 20.0, True),
}


class IQAReward:
    """
    `sum_m w_m * normalised_m(image) - fidelity_weight * L1(downscaled image, LQ)`.

    Args:
        metrics (`dict[str, float]`, *optional*): pyiqa metric name -> weight. Defaults to MUSIQ, CLIPIQA+ and MANIQA
            with weight 1 each (their weights download on first use).
        fidelity_weight (`float`, *optional*, defaults to 1.0): Weight of the L1 distance (in [0, 1] pixel units)
            between the candidate and the LQ, both downscaled to a quarter of the output size.
        device (`str`, *optional*): Where the metric models run; defaults to CUDA when available.
        pretrained (`bool`, *optional*, defaults to `True`): `False` builds learned metrics with random weights
            (offline tests only).

    Metric models are built on first call and reused.
    """

    def __init__(
        self,
        metrics: dict[str, float] | None = None,
        fidelity_weight: float = 1.0,
        device: str | None = None,
        pretrained: bool = True,
    ):
        self.weights = dict(metrics or {"musiq": 1.0, "clipiqa+": 1.0, "maniqa": 1.0})
        unknown = [m for m in self.weights if m not in METRIC_RANGES]
        if unknown:
            raise ValueError(f"No normalisation range for metric(s) {unknown}; known: {sorted(METRIC_RANGES)}.")
        self.fidelity_weight = fidelity_weight
        self.device = device
        self.pretrained = pretrained
        self._metrics: dict | None = None

    def _build(self, device: torch.device) -> dict:
        from .evaluation.metrics import create_pyiqa_metric

        return {name: create_pyiqa_metric(name, device, pretrained=self.pretrained) for name in self.weights}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self._metrics is None:
            self._metrics = self._build(device)
        images = images.float().clamp(0, 1)
        total = torch.zeros(images.shape[0])
        for name, weight in self.weights.items():
            low, high, lower_better = METRIC_RANGES[name]
            score = (self._metrics[name](images.to(device)).flatten().float().cpu() - low) / (high - low)
            total += weight * (1 - score if lower_better else score)
        if self.fidelity_weight:
            # compare at a quarter of the output size: about the LQ's own resolution for the default x4
            size = tuple(max(8, s // 4) for s in images.shape[-2:])
            small = F.interpolate(images, size=size, mode="area")
            reference = F.interpolate(lq.float(), size=size, mode="area")
            total -= self.fidelity_weight * (small - reference).abs().mean(dim=(1, 2, 3)).cpu()
        return total


@dataclass
class TTSConfig:
    """
    Test-time scaling settings.

    Args:
        num_candidates (`int`, defaults to 4): `N` candidates per branching step; 1 turns the search off.
        branch_steps (`Sequence[int]`, *optional*): Step indices where the search branches. Default: the first
            quarter of the steps (at least one), where the layout of the result is decided.
        mspde_steps (`int`, defaults to 2): `k` coarse Euler steps of the partial denoising estimate.
        decode_scale (`float`, defaults to 0.5): Candidates are decoded at this fraction of the output size for
            scoring (the latent is downsampled first), trading reward accuracy for speed.
        reward (`Callable`, *optional*): `(images, lq) -> (B,)` scores; defaults to [`IQAReward`]().
    """

    num_candidates: int = 4
    branch_steps: Sequence[int] | None = None
    mspde_steps: int = 2
    decode_scale: float = 0.5
    reward: Reward | None = field(default=None, repr=False)

    def validate(self, num_inference_steps: int) -> None:
        if not isinstance(self.num_candidates, int) or self.num_candidates < 1:
            raise ValueError(f"`tts.num_candidates` must be a positive integer, got {self.num_candidates!r}.")
        if self.mspde_steps < 1:
            raise ValueError(f"`tts.mspde_steps` must be at least 1, got {self.mspde_steps}.")
        if not 0 < self.decode_scale <= 1:
            raise ValueError(f"`tts.decode_scale` must be in (0, 1], got {self.decode_scale}.")
        bad = [i for i in self.resolved_branch_steps(num_inference_steps) if not 0 <= i < num_inference_steps - 1]
        if bad:
            raise ValueError(
                f"`tts.branch_steps` {bad} are outside 0..{num_inference_steps - 2} (the last step has nothing left "
                "to choose)."
            )

    def resolved_branch_steps(self, num_inference_steps: int) -> list[int]:
        if self.branch_steps is not None:
            return sorted(set(self.branch_steps))
        return list(range(max(1, num_inference_steps // 4))) if num_inference_steps > 1 else []

    def expected_nfe(self, num_inference_steps: int) -> int:
        """The NFE formula of the module docstring."""
        if self.num_candidates == 1:
            return num_inference_steps
        per_branch = (self.num_candidates - 1) + self.num_candidates * self.mspde_steps
        return num_inference_steps + len(self.resolved_branch_steps(num_inference_steps)) * per_branch

    def get_reward(self) -> Reward:
        if self.reward is None:
            self.reward = IQAReward()
        return self.reward
