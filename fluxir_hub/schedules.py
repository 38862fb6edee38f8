"""Few-step sampling schedules: cost-aware choice of K jumps along a teacher's trajectory (paper 002, FLUX-IR §5a).

Schedules are lists of *unshifted* noise levels in (0, 1], one per step, as `FluxIRPipeline(sigmas=...)` and diffusers'
FLUX pipelines take them; FLUX's resolution shift is applied on top, so one schedule serves every resolution.

The cost of jumping from grid point i to j in one step is how far the model's velocity at the teacher's state `X_i`
is from the chord slope of the teacher's trajectory between `i` and `j`:

    cost(i -> j) = RMS( v(X_i) - (X_j - X_i) / (sigma_j - sigma_i) )

which is zero for one teacher step and grows with the trajectory's curvature. [`cheapest_schedule`] picks the K jumps
from the first to the last grid point whose summed cost is least (dynamic programming over the grid), as the authors'
code does for 1-, 2- and 4-step schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def uniform_sigmas(num_steps: int) -> list[float]:
    """The pipeline's default schedule: `num_steps` unshifted noise levels from 1 down to `1 / num_steps`."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive integer, got {num_steps!r}.")
    return np.linspace(1.0, 1.0 / num_steps, num_steps).tolist()


def resolution_shift(image_seq_len: int, scheduler_config) -> float:
    """FLUX's `mu` for `image_seq_len` image tokens, from a scheduler config (diffusers' `calculate_shift`)."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    return calculate_shift(
        image_seq_len,
        scheduler_config.get("base_image_seq_len", 256),
        scheduler_config.get("max_image_seq_len", 4096),
        scheduler_config.get("base_shift", 0.5),
        scheduler_config.get("max_shift", 1.15),
    )


def shifted_sigmas(sigmas: Sequence[float], image_seq_len: int, scheduler_config) -> torch.Tensor:
    """
    The noise levels the pipeline really steps through for `sigmas` at `image_seq_len` image tokens: FLUX's
    resolution shift applied, the final 0 appended. Shape `(len(sigmas) + 1,)`, float32. A fresh scheduler is built
    from `scheduler_config`, so no shared scheduler is changed.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(sigmas=list(sigmas), mu=resolution_shift(image_seq_len, scheduler.config))
    return scheduler.sigmas.float().cpu()


def euler_trajectory(
    velocity: Callable[[torch.Tensor, float], torch.Tensor],
    start: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    checkpointed: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """
    Follow the flow ODE from `start` (at `sigmas[0]`) with Euler steps through `sigmas` (any decreasing noise levels:
    a whole shifted schedule ending at 0, a part of one, or a student's jumps). `velocity(x, sigma)` is the model.
    Returns the `len(sigmas)` states (the start included) and the `len(sigmas) - 1` velocities, each shaped like
    `start`. With `checkpointed`, each step's activations are recomputed in the backward pass instead of kept (a
    rollout with gradients at one step's memory). The one Euler rollout of training: schedule pricing, the
    distillation teacher and student, and the RL stage's reference and policy.
    """
    states, velocities = [start], []
    x = start
    for i in range(len(sigmas) - 1):
        if checkpointed:
            from torch.utils.checkpoint import checkpoint

            v = checkpoint(velocity, x, float(sigmas[i]), use_reentrant=False)
        else:
            v = velocity(x, float(sigmas[i]))
        x = x + (float(sigmas[i + 1]) - float(sigmas[i])) * v
        states.append(x)
        velocities.append(v)
    return states, velocities


def jump_costs(states: Sequence[torch.Tensor], velocities: Sequence[torch.Tensor], sigmas: torch.Tensor) -> np.ndarray:
    """
    `cost[i, j]` of jumping from grid point `i` to `j > i` in one step (module docstring), averaged over the batch;
    `inf` where `j <= i`. Shape `(len(states), len(states))`.
    """
    n = len(states)
    if len(velocities) != n - 1 or len(sigmas) != n:
        raise ValueError(f"Need {n - 1} velocities and {n} sigmas for {n} states.")
    cost = np.full((n, n), np.inf)
    for i in range(n - 1):
        for j in range(i + 1, n):
            chord = (states[j] - states[i]) / (float(sigmas[j]) - float(sigmas[i]))
            cost[i, j] = float((velocities[i] - chord).float().square().mean().sqrt())
    return cost


def cheapest_schedule(cost: np.ndarray, num_jumps: int) -> list[int]:
    """
    Grid indices `0 = i_0 < i_1 < ... < i_K = n - 1` of the `num_jumps` jumps with the least summed `cost`.
    """
    n = cost.shape[0]
    if not isinstance(num_jumps, int) or not 1 <= num_jumps <= n - 1:
        raise ValueError(f"`num_jumps` must be an integer from 1 to {n - 1} on a {n}-point grid, got {num_jumps!r}.")
    best = np.full((num_jumps + 1, n), np.inf)  # best[k, j]: least cost to reach j from 0 in k jumps
    came_from = np.zeros((num_jumps + 1, n), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, num_jumps + 1):
        for j in range(1, n):
            totals = best[k - 1, :j] + cost[:j, j]
            came_from[k, j] = int(np.argmin(totals))
            best[k, j] = totals[came_from[k, j]]
    path = [n - 1]
    for k in range(num_jumps, 0, -1):
        path.append(int(came_from[k, path[-1]]))
    return path[::-1]


def schedule_cost(cost: np.ndarray, indices: Sequence[int]) -> float:
    """Summed cost of the jumps between consecutive `indices`."""
    return float(sum(cost[a, b] for a, b in zip(indices[:-1], indices[1:], strict=True)))


def grid_indices(student_sigmas: Sequence[float], teacher_sigmas: Sequence[float]) -> list[int]:
    """
    Where each of `student_sigmas` lies on the teacher's unshifted grid, plus the final point (0). Refuses student
    levels that are not grid points: their teacher states would not exist.
    """
    grid = np.asarray(teacher_sigmas, dtype=float)
    indices = []
    for s in student_sigmas:
        i = int(np.argmin(np.abs(grid - s)))
        if abs(grid[i] - s) > 1e-6:
            raise ValueError(
                f"Student noise level {s} is not on the teacher's {len(grid)}-step grid; choose a step count that "
                f"divides {len(grid)} for a uniform schedule."
            )
        indices.append(i)
    return [*indices, len(grid)]
