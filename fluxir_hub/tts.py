"""Reward-guided test-time scaling for restoration (ResFlow-Tuner, paper 003): a beam search over sampling paths,
judged by a multi-step partial denoising estimate (MSPDE) and one verifier or a rank ensemble of several.

At each branching step `i` (flow time `s_i`; `K = len(branch_steps)` rounds), each of the `P` surviving latents
(`P = 1` before the first round, the beam width `M` after it) has its velocity `v`. The round forms `N` candidates
per image, `N / P` from each survivor: the survivor itself (its plain continuation) and perturbed copies, either
re-noised estimates `(1 - s_i) x0 + s_i eps` of its clean latent `x0 = z - s_i v` (`perturbation="renoise"`) or
"zero-drift" Gaussian kicks `z + noise_scale * sqrt(s_i - s_{i+1}) eps` of the latent itself
(`perturbation="zero_drift"`, the paper's reading). Every candidate takes the step to `s_{i+1}`; the MSPDE then
estimates where it would end: `k` coarse Euler steps from `s_{i+1}` to 0 (`mspde_mode="to_zero"`), or `S` steps
along the sampling schedule and a one-shot clean estimate `x0 = z - s v` (`mspde_mode="partial"`, S + 1
evaluations). The estimate is decoded and scored; the `M` best candidates per image continue (`M = 1`: greedy). With
`M > 1`, the survivors' final images are scored once more at the end and the best is returned (best-of-M).

Scores: one reward (higher is better), or with several `verifiers` the mean of each candidate's rank under each
verifier (ranks need no common scale; ties keep the lower candidate index, so the plain continuation wins a tie).

Cost in transformer evaluations per image (a beam's survivors share one batched call, each counted), with `P_i` the
survivors at step `i` and `E` the evaluations of one estimate (`k`, or `S + 1`):

    NFE = sum_i P_i + sum_{branch steps j} ((N - P_j) + N * E)

which for `M = 1` is `num_inference_steps + K * ((N - 1) + N * k)` (plain NFE when N == 1).

A reward maps `(images, lq)`, both `(B, 3, H, W)` in [0, 1] at the same size, to `(B,)` scores (higher is better).
[`IQAReward`] is the default: weighted, range-normalised pyiqa no-reference metrics plus a fidelity term against the
LQ, so the search cannot win by hallucinating content the LQ does not support.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)
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


DEFAULT_REWARD_METRICS = {"musiq": 1.0, "clipiqa+": 1.0, "maniqa": 1.0}  # paper 003's verifiers
OFFLINE_REWARD_METRICS = {"piqe": 1.0, "entropy": 1.0}  # need no downloaded weights


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
        self.weights = dict(metrics or DEFAULT_REWARD_METRICS)
        self.falls_back = metrics is None  # the default learned metrics give way to offline ones without weights
        unknown = [m for m in self.weights if m not in METRIC_RANGES]
        if unknown:
            raise ValueError(f"No normalisation range for metric(s) {unknown}; known: {sorted(METRIC_RANGES)}.")
        self.fidelity_weight = fidelity_weight
        self.device = device
        self.pretrained = pretrained
        self._metrics: dict | None = None

    def _build(self, device: torch.device) -> dict:
        from .evaluation.metrics import MetricUnavailableError, create_pyiqa_metric

        try:
            return {name: create_pyiqa_metric(name, device, pretrained=self.pretrained) for name in self.weights}
        except MetricUnavailableError:
            if not self.falls_back:
                raise
            logger.warning(
                "Test-time search: %s's weights are not on this machine (offline); scoring with %s instead, which "
                "need none. Pass `IQAReward(metrics=...)` to choose.",
                "/".join(DEFAULT_REWARD_METRICS),
                "/".join(OFFLINE_REWARD_METRICS),
            )
            self.weights = dict(OFFLINE_REWARD_METRICS)
            return {name: create_pyiqa_metric(name, device) for name in self.weights}

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


PERTURBATIONS = ("renoise", "zero_drift")
MSPDE_MODES = ("to_zero", "partial")


def metric_verifier(name: str, pretrained: bool = True) -> Reward:
    """A pyiqa metric as a verifier (higher is better; lower-is-better metrics are negated by their range)."""
    return IQAReward(metrics={name: 1.0}, fidelity_weight=0.0, pretrained=pretrained)


def rank_scores(scores: torch.Tensor) -> torch.Tensor:
    """
    `(V, N, B)` verifier scores of `N` candidates -> `(N, B)` combined scores, higher is better: the negated mean
    over verifiers of each candidate's rank (0 = best). Ties in a verifier keep the lower candidate index first.
    """
    order = torch.sort(-scores, dim=1, stable=True).indices  # (V, N, B) candidates best first
    ranks = torch.empty_like(order)
    positions = torch.arange(scores.shape[1]).view(1, -1, 1).expand_as(order)
    ranks.scatter_(1, order, positions)
    return -ranks.float().mean(dim=0)


@dataclass
class TTSConfig:
    """
    Test-time scaling settings.

    Args:
        num_candidates (`int`, defaults to 4): `N` candidates per branching step; 1 turns the search off.
        branch_steps (`Sequence[int]`, *optional*): Step indices where the search branches (the `K` intervention
            rounds). Default: the first quarter of the steps (at least one), where the layout of the result is decided.
        mspde_steps (`int`, defaults to 2): `k` coarse Euler steps to 0 (`mspde_mode="to_zero"`), or `S` schedule
            steps before the one-shot estimate (`"partial"`).
        mspde_mode (`str`, defaults to `"to_zero"`): How the estimate reaches a clean image (see the module).
        perturbation (`str`, defaults to `"zero_drift"`): `"zero_drift"` (paper 003's candidates: small kicks of the
            current latent) or `"renoise"` (fresh noise on its clean estimate; at `s = 1` that is a restart).
        noise_scale (`float`, defaults to 1.0): Size of a zero-drift kick, in units of `sqrt(step size)`.
        beam_width (`int`, defaults to 1): `M` survivors per round (1: greedy); must divide `num_candidates`.
        decode_scale (`float`, defaults to 0.5): Candidates are decoded at this fraction of the output size for
            scoring (the latent is downsampled first), trading reward accuracy for speed.
        reward (`Callable`, *optional*): `(images, lq) -> (B,)` scores; defaults to [`IQAReward`]().
        verifiers (`Sequence[str | Callable]`, *optional*): Several verifiers (pyiqa metric names or reward callables)
            combined by mean rank; overrides `reward`.
    """

    num_candidates: int = 4
    branch_steps: Sequence[int] | None = None
    mspde_steps: int = 2
    mspde_mode: str = "to_zero"
    perturbation: str = "zero_drift"
    noise_scale: float = 1.0
    beam_width: int = 1
    decode_scale: float = 0.5
    reward: Reward | None = field(default=None, repr=False)
    verifiers: Sequence[str | Reward] | None = field(default=None, repr=False)

    def validate(self, num_inference_steps: int) -> None:
        if not isinstance(self.num_candidates, int) or self.num_candidates < 1:
            raise ValueError(f"`tts.num_candidates` must be a positive integer, got {self.num_candidates!r}.")
        if self.mspde_steps < 1:
            raise ValueError(f"`tts.mspde_steps` must be at least 1, got {self.mspde_steps}.")
        if not 0 < self.decode_scale <= 1:
            raise ValueError(f"`tts.decode_scale` must be in (0, 1], got {self.decode_scale}.")
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"`tts.perturbation` must be one of {PERTURBATIONS}, got {self.perturbation!r}.")
        if self.mspde_mode not in MSPDE_MODES:
            raise ValueError(f"`tts.mspde_mode` must be one of {MSPDE_MODES}, got {self.mspde_mode!r}.")
        if not (
            isinstance(self.noise_scale, (int, float)) and math.isfinite(self.noise_scale) and self.noise_scale >= 0
        ):
            raise ValueError(f"`tts.noise_scale` must be a finite number >= 0, got {self.noise_scale!r}.")
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"`tts.beam_width` must be a positive integer, got {self.beam_width!r}.")
        if self.beam_width > self.num_candidates:
            raise ValueError(
                f"`tts.beam_width` ({self.beam_width}) is larger than `tts.num_candidates` ({self.num_candidates}): "
                "a round cannot keep more survivors than it has candidates."
            )
        if self.num_candidates % self.beam_width:
            raise ValueError(
                f"`tts.num_candidates` ({self.num_candidates}) must be a multiple of `tts.beam_width` "
                f"({self.beam_width}): each survivor spawns the same number of candidates."
            )
        if self.verifiers is not None and not self.verifiers:
            raise ValueError("`tts.verifiers` is empty; give at least one, or leave it unset for `tts.reward`.")
        steps = self.resolved_branch_steps(num_inference_steps)
        bad = [i for i in steps if not 0 <= i < num_inference_steps - 1]
        if bad:
            raise ValueError(
                f"`tts.branch_steps` {bad} are outside 0..{num_inference_steps - 2} (the last step has nothing left "
                "to choose)."
            )
        if self.mspde_mode == "partial" and self.num_candidates > 1:
            short = [i for i in steps if i + 1 + self.mspde_steps > num_inference_steps]
            if short:
                raise ValueError(
                    f"`tts.mspde_steps` ({self.mspde_steps}) is larger than the steps left after branch step(s) "
                    f"{short} of {num_inference_steps}; lower it or branch earlier."
                )

    def resolved_branch_steps(self, num_inference_steps: int) -> list[int]:
        if self.branch_steps is not None:
            return sorted(set(self.branch_steps))
        return list(range(max(1, num_inference_steps // 4))) if num_inference_steps > 1 else []

    @property
    def estimate_nfe(self) -> int:
        """Transformer evaluations of one candidate's estimate (`E` in the module docstring)."""
        return self.mspde_steps + 1 if self.mspde_mode == "partial" else self.mspde_steps

    def expected_nfe(self, num_inference_steps: int) -> int:
        """The NFE formula of the module docstring."""
        if self.num_candidates == 1:
            return num_inference_steps
        branches = self.resolved_branch_steps(num_inference_steps)
        if not branches:
            return num_inference_steps
        first = branches[0]
        survivors = [1 if i <= first else self.beam_width for i in range(num_inference_steps)]
        extra = sum((self.num_candidates - survivors[j]) + self.num_candidates * self.estimate_nfe for j in branches)
        return sum(survivors) + extra

    def get_reward(self) -> Reward:
        if self.reward is None:
            self.reward = IQAReward()
        return self.reward

    def get_verifiers(self) -> list[Reward]:
        """The verifiers that score candidates: `verifiers` (metric names built on first use), else `[reward]`."""
        if self.verifiers is None:
            return [self.get_reward()]
        built = [metric_verifier(v) if isinstance(v, str) else v for v in self.verifiers]
        self.verifiers = built
        return built

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        """`(V, N, B)` scores -> `(N, B)`: the single reward as is, several verifiers by mean rank."""
        return scores[0] if scores.shape[0] == 1 else rank_scores(scores)


Predict = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]  # (latents, flow times, cache name) -> velocity
Decode = Callable[[torch.Tensor, float], torch.Tensor]  # (latents, scale) -> images in [0, 1]
Guide = Callable[[torch.Tensor, float], torch.Tensor]  # (stepped latents, restoration clock) -> pulled latents


class TestTimeSearch:
    r"""
    The search of one pipeline call (see the module docstring): a round of candidates at each branching step, each
    judged by its MSPDE, the beam's survivors carried from round to round, and best-of-M at the end. Sampling itself
    stays with the caller, which hands over three callables:

    Args:
        config ([`TTSConfig`]): The search's settings.
        num_inference_steps (`int`): Steps of the call's schedule.
        lq_pixels (`torch.Tensor` of shape `(B, 3, H, W)`): The resized LQ images in [-1, 1] (the verifiers' reference).
        predict (`Callable`): `(latents (B * P, N, C), flow times (B * P,), cache name) -> velocity`, with the call's
            conditioning repeated for the `P` survivors of each image.
        decode (`Callable`): `(latents, scale) -> images (B * P, 3, h, w)` in [0, 1], decoded at `scale` of the size.
        guide (`Callable`): `(stepped latents, clock) -> latents`, the call's restoration sampling strategy.
        generator: The call's generator(s) (a list: one per image).

    After the call, `rewards` holds each image's best combined score per round, `nfe` the evaluations it spent and
    `survivors` how many latents per image it carries (`P`).
    """

    def __init__(
        self,
        config: TTSConfig,
        num_inference_steps: int,
        lq_pixels: torch.Tensor,
        predict: Predict,
        decode: Decode,
        guide: Guide,
        generator=None,
    ):
        self.config = config
        self.steps = set(config.resolved_branch_steps(num_inference_steps)) if config.num_candidates > 1 else set()
        self.lq_pixels, self.predict, self.decode, self.guide = lq_pixels, predict, decode, guide
        self.generator = generator
        self.batch = lq_pixels.shape[0]
        self.survivors, self.nfe = 1, 0
        self.rewards: list[list[float]] | None = [[] for _ in range(self.batch)] if self.steps else None

    def _scores(self, images: torch.Tensor, parents: int) -> torch.Tensor:
        """`(V, B * parents)` verifier scores of images (image-major), against the LQ at their size."""
        lq = F.interpolate((self.lq_pixels.float() + 1) / 2, size=images.shape[-2:], mode="area")
        lq = lq.repeat_interleave(parents, dim=0)
        return torch.stack(
            [
                torch.as_tensor(v(images, lq), dtype=torch.float32).reshape(-1).cpu()
                for v in self.config.get_verifiers()
            ]
        )

    def _estimate(self, z: torch.Tensor, c: int, step_index: int, sigmas: list[float]) -> torch.Tensor:
        """MSPDE of a stepped candidate: where it would end (its clean latent)."""
        config, parents = self.config, z.shape[0] // self.batch
        s_next = float(sigmas[step_index + 1])
        if config.mspde_mode == "partial":  # S steps along the schedule, then a one-shot clean estimate
            path = [float(x) for x in sigmas[step_index + 1 : step_index + 2 + config.mspde_steps]]
        else:  # k coarse Euler steps to the clean end
            path = [float(x) for x in np.linspace(s_next, 0.0, config.mspde_steps + 1)]
        for a, b in zip(path[:-1], path[1:], strict=True):
            step_t = torch.full((z.shape[0],), a, device=z.device, dtype=z.dtype)
            z = z + (b - a) * self.predict(z, step_t, f"tts-estimate-{c}")
            self.nfe += parents  # evaluations per image: one per survivor
        if config.mspde_mode == "partial":
            step_t = torch.full((z.shape[0],), path[-1], device=z.device, dtype=z.dtype)
            z = z - path[-1] * self.predict(z, step_t, f"tts-estimate-{c}")
            self.nfe += parents
        return z

    def step(
        self, latents: torch.Tensor, velocity: torch.Tensor, step_index: int, sigmas: list[float], clock: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        At a branching step, one round: `N` candidates per image from the `P` survivors `latents` (image-major,
        `(B * P, N, C)`) with their `velocity`, each stepped, pulled toward the LQ (`clock`) and estimated; the `M`
        (beam width) best per image are returned with their velocities, best first. At other steps, the input.
        """
        if step_index not in self.steps:
            return latents, velocity
        from diffusers.utils.torch_utils import randn_tensor

        config = self.config
        s, s_next = float(sigmas[step_index]), float(sigmas[step_index + 1])
        parents = latents.shape[0] // self.batch
        children = config.num_candidates // parents
        timestep = torch.full((latents.shape[0],), s, device=latents.device, dtype=latents.dtype)
        generator = self.generator
        if isinstance(generator, list):  # one generator per image: each draws for all of its survivors
            generator = [g for g in generator for _ in range(parents)]
        # Candidate c of survivor p: c = 0 is the survivor itself; the others are perturbed copies.
        candidates, velocities = [latents], [velocity]
        for c in range(1, children):
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            if config.perturbation == "zero_drift":
                candidate = latents + config.noise_scale * math.sqrt(max(s - s_next, 0.0)) * noise
            else:
                candidate = (1 - s) * (latents - s * velocity) + s * noise  # re-noised clean estimate
            candidates.append(candidate)
            velocities.append(self.predict(candidate, timestep, f"tts-candidate-{c}"))
            self.nfe += parents  # evaluations per image: one per survivor
        scores = []  # per candidate c: (V, B * P)
        for c, (candidate, candidate_velocity) in enumerate(zip(candidates, velocities, strict=True)):
            z = self.guide(candidate + (s_next - s) * candidate_velocity, clock)
            estimate = self._estimate(z, c, step_index, sigmas)
            scores.append(self._scores(self.decode(estimate, config.decode_scale), parents))
        # (V, candidates) per image: candidate index = p * children + c, survivors' candidates in order
        raw = torch.stack(scores, dim=1).view(-1, children, self.batch, parents)
        raw = raw.permute(0, 3, 1, 2).reshape(raw.shape[0], parents * children, self.batch)
        combined = config.combine(raw)  # (N, B), higher is better
        keep = torch.sort(-combined, dim=0, stable=True).indices[: config.beam_width]  # (M, B), best first
        stacked_z = torch.stack(candidates).view(children, self.batch, parents, *latents.shape[1:])
        stacked_v = torch.stack(velocities).view(children, self.batch, parents, *latents.shape[1:])
        chosen, chosen_v = [], []
        for b in range(self.batch):
            for index in keep[:, b].tolist():
                p, c = divmod(index, children)
                chosen.append(stacked_z[c, b, p])
                chosen_v.append(stacked_v[c, b, p])
        for b, reward in enumerate(combined.gather(0, keep[:1])[0].tolist()):
            self.rewards[b].append(reward)
        self.survivors = len(chosen) // self.batch
        return torch.stack(chosen), torch.stack(chosen_v)

    def finish(self, latents: torch.Tensor) -> torch.Tensor:
        """Best-of-M at the end of a beam search: each image's survivors `(B * M, N, C)` decoded, scored, and the
        best kept `(B, N, C)`; a greedy search's latents as they are."""
        if self.survivors == 1:
            return latents
        images = self.decode(latents, self.config.decode_scale)
        raw = self._scores(images, self.survivors)
        combined = self.config.combine(raw.view(-1, self.batch, self.survivors).permute(0, 2, 1))  # (M, B)
        best = torch.sort(-combined, dim=0, stable=True).indices[0]
        return latents.view(self.batch, self.survivors, *latents.shape[1:])[torch.arange(self.batch), best]


def repeat_batch(kwargs: dict[str, Any], times: int) -> dict[str, Any]:
    """`predict_velocity` kwargs with every per-image tensor repeated `times` times (image-major), for a beam."""
    repeated = dict(kwargs)
    for key in ("lq_latents", "prompt_embeds", "pooled_prompt_embeds", "guidance"):
        if repeated.get(key) is not None:
            repeated[key] = repeated[key].repeat_interleave(times, dim=0)
    return repeated
