"""Cost-aware few-step distillation of a trained FluxIR adapter (paper 002, FLUX-IR §5; `fluxir-train --stage distill`).

The teacher is the trained adapter (frozen) following the flow ODE in `teacher_steps` Euler steps. The student, a
copy of it, jumps through K of those grid points in K steps. Which K: the cost-aware schedule (the jumps whose summed
cost, the mismatch between the teacher's velocity and its trajectory's chord, is least; `fluxir_hub.schedules`),
chosen once from a few training batches before training, or the uniform one. Losses (the authors' code, §5c): the
student's state after each jump against the teacher's state there (x100), its final latent against the teacher's final
latent (x300) and against the ground-truth latent (x600 for a 4-step student, x300 for 2 and 1), plus the ordinary
flow-matching loss; MSE, except L1 for a 1-step student. `distill_start_lq_weight` starts both trajectories from
`(1 - w) noise + w LQ latent` (the authors start their FLUX sampler from an LQ-anchored point); the student keeps `w`
in its config, so the pipeline starts there too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fluxir_hub.schedules import (
    cheapest_schedule,
    euler_trajectory,
    grid_indices,
    jump_costs,
    schedule_cost,
    shifted_sigmas,
    uniform_sigmas,
)

from .objectives import FrozenCopyStage
from .seeding import torch_generator
from .stages import register_stage

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "distill_schedule.json"


@dataclass
class DistillSchedule:
    """The student's schedule on the teacher's grid, with what it cost; saved as `distill_schedule.json`."""

    mode: str  # cost-aware or uniform
    teacher_steps: int
    indices: list[int]  # grid points 0 = i_0 < ... < i_K = teacher_steps
    sigmas: list[float]  # the student's unshifted noise levels (one per step)
    cost: float  # summed jump cost of this schedule
    uniform_cost: float | None  # the uniform K-step schedule's cost, when it lies on the grid

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / SCHEDULE_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")


@register_stage
class Distiller(FrozenCopyStage):
    """`--stage distill`: the frozen teacher, the schedule and the loss (arguments:
    [`~training.objectives.FrozenCopyStage`])."""

    name = "distill"
    help = "a few-step student of `adapter_init` (paper 002 §5)"
    section = "distill"
    needs_trained_component = "needs the trained adapter to distil"
    own_schedule = True
    card_summary = """

**A few-step student** (paper 002's cost-aware trajectory distillation): distilled from
`{{ config.model.adapter_init }}` to restore in {{ options.num_student_steps }} steps on its own
{{ options.distill_schedule }} schedule (noise levels in the adapter config's `distilled_sigmas` and
`distill_schedule.json`), which the pipeline uses when no step count is given."""
    card_loss = (
        "{{ options.distill_intermediate_weight }} x states at the jumps + {{ options.distill_teacher_weight }} x final "
        "vs teacher + {{ options.resolved_distill_gt_weight }} x final vs ground truth "
        "({{ options.resolved_distill_distance }}) + {{ options.distill_base_weight }} x velocity MSE (teacher: "
        "{{ config.run.teacher_steps }} steps)"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.student, self.teacher, self.teacher_grid = self.trained, self.frozen, self.grid
        self.schedule: DistillSchedule | None = None

    @classmethod
    def config_problems(cls, config) -> list[str]:
        steps, k = config.run.teacher_steps, config.distill.num_student_steps
        if not 1 <= k < steps:
            return [f"`num_student_steps` must be from 1 to teacher_steps - 1 ({steps - 1}), got {k}."]
        if config.distill.distill_schedule == "uniform" and steps % k:
            return [
                f"A uniform {k}-step schedule lies on the teacher's grid only when it divides teacher_steps "
                f"({steps}); use the cost-aware schedule or another step count."
            ]
        return []

    def prepare(self, trainer) -> None:
        """Price the jumps on the teacher's trajectories of the first few training batches and fix the student's
        schedule (deterministic for the seed, so a resumed run finds the same one)."""
        from fluxir_hub.latents import image_ids, pack_latents

        from .data import iterate_batches

        config, accelerator = trainer.config, trainer.accelerator
        device, dtype = accelerator.device, trainer.weight_dtype
        batches = iterate_batches(config, trainer.source, accelerator.process_index, accelerator.num_processes)
        rollouts = []
        for index in range(self.options.schedule_search_batches):
            batch = next(batches)
            generator = torch_generator(config.optim.seed, "schedule", index)
            with torch.no_grad():
                z0, z_lq = trainer.encode(batch["hq"]), trainer.encode(batch["lq"])
                embeds, pooled, txt_ids = trainer.pipe.encode_prompt(  # the pairs' own prompts (task prompts too)
                    batch["prompts"], device=device, max_sequence_length=trainer.models.max_sequence_length
                )
            b, _, h, w = z0.shape
            z1 = pack_latents(torch.randn(z0.shape, generator=generator).to(device))
            guidance = torch.full((b,), config.objective.guidance_scale, device=device)
            lq = pack_latents(z_lq).to(dtype)
            states, velocities, sigmas = self.teacher_rollout(
                self.transformer,
                self.start(z1, lq),
                lq,
                embeds.to(dtype),
                pooled.to(dtype),
                image_ids(h // 2, w // 2, device=device),
                txt_ids,
                guidance,
            )
            rollouts.append((states, velocities, sigmas))
        schedule = self.choose_schedule(rollouts)
        if accelerator.is_main_process:
            schedule.save(trainer.output_dir)
        logger.info(
            f"Distillation schedule ({schedule.mode}): teacher grid points {schedule.indices}, sigmas "
            f"{[round(s, 4) for s in schedule.sigmas]}, cost {schedule.cost:.4f} (uniform: {schedule.uniform_cost})"
        )

    def teacher_rollout(self, transformer, start, lq, embeds, pooled, img_ids, txt_ids, guidance):
        """The teacher's states on its grid (the start included) and its velocities, without gradients."""
        sigmas = shifted_sigmas(self.teacher_grid, start.shape[1], self.scheduler_config)
        with torch.no_grad(), self.frozen_hooks():
            states, velocities = euler_trajectory(
                lambda x, s: self.frozen_velocity(x, lq, embeds, pooled, s, img_ids, txt_ids, guidance),
                start.float(),
                sigmas,
            )
        return states, velocities, sigmas

    def choose_schedule(self, rollouts: list[tuple[list, list, torch.Tensor]]) -> DistillSchedule:
        """Schedule from the teacher trajectories of a few batches (jump costs averaged over them)."""
        options, k = self.options, self.options.num_student_steps
        cost = np.mean([jump_costs(states, velocities, sigmas) for states, velocities, sigmas in rollouts], axis=0)
        uniform = uniform_sigmas(k)
        try:
            uniform_indices = grid_indices(uniform, self.teacher_grid)
        except ValueError:
            uniform_indices = None
        if options.distill_schedule == "uniform":
            indices = uniform_indices
        else:
            indices = cheapest_schedule(cost, k)
        self.schedule = DistillSchedule(
            mode=options.distill_schedule,
            teacher_steps=self.teacher_steps,
            indices=indices,
            sigmas=[self.teacher_grid[i] for i in indices[:-1]],
            cost=schedule_cost(cost, indices),
            uniform_cost=None if uniform_indices is None else schedule_cost(cost, uniform_indices),
        )
        self.student.register_to_config(
            distilled_sigmas=self.schedule.sigmas, distilled_start_lq_weight=options.distill_start_lq_weight
        )
        return self.schedule

    def start(self, z1: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """Where the teacher's and the student's trajectories begin: noise, or noise mixed with the LQ latent."""
        w = self.options.distill_start_lq_weight
        return z1 if w == 0 else (1 - w) * z1 + w * lq.to(z1.dtype)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The distillation loss of one [`~training.objectives.LatentBatch`], and its parts."""
        options, schedule, model = self.options, self.schedule, self.model
        base_loss, logs, _, _ = self.base.velocity_terms(batch)
        (z0, z1), lq, embeds, pooled = batch.packed, batch.lq, batch.embeds, batch.pooled
        img_ids, txt_ids, guidance = batch.img_ids, batch.txt_ids, batch.guidance
        start = self.start(z1, lq)
        states, _, sigmas = self.teacher_rollout(
            self.transformer, start, lq, embeds, pooled, img_ids, txt_ids, guidance
        )
        distance = F.l1_loss if options.resolved_distill_distance == "l1" else F.mse_loss

        def student(x: torch.Tensor, sigma: float) -> torch.Tensor:
            t = torch.full((z1.shape[0],), float(sigma), device=z1.device)
            return model(x.to(self.dtype), lq, embeds, pooled, t, img_ids, txt_ids, guidance).float()

        jumps = euler_trajectory(student, start.float(), [sigmas[i] for i in schedule.indices])[0]
        intermediate = z1.new_zeros(())
        for state, index in zip(jumps[1:-1], schedule.indices[1:-1], strict=True):  # the student at its jumps
            intermediate = intermediate + distance(state, states[index])
        x = jumps[-1]
        to_teacher = distance(x, states[-1])
        to_gt = distance(x, z0.float())
        loss = (
            options.distill_intermediate_weight * intermediate
            + options.distill_teacher_weight * to_teacher
            + options.resolved_distill_gt_weight * to_gt
            + options.distill_base_weight * base_loss
        )
        logs.update(
            {
                "loss_intermediate": intermediate.item(),
                "loss_teacher": to_teacher.item(),
                "loss_gt": to_gt.item(),
                "loss_base": base_loss.item(),
                "loss": loss.item(),
            }
        )
        return loss, logs
