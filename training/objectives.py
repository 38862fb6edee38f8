"""What the training stages optimise: `stage.loss(batch) -> (loss, logs)` (`training.stages.TrainingStage`).

The trainer encodes each batch once into a [`LatentBatch`] (packed latents, the conditioning of a controlled call,
the sampled flow times and noise) and hands it to the stage. [`AdapterObjective`] is paper 001's flow matching and
pixel loss (the adapter stage, and every other stage's "base" term); [`FrozenCopyStage`] is the common part of the
stages that tune a trained component against a frozen copy of it (`training.rl.RLTuner`,
`training.distill.Distiller`). A stage holds whatever frozen copies it needs; the accelerate loop, data, checkpoints
and resume are the trainer's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fluxir_hub.latents import pack_latents, unpack_latents

from .losses import interpolate, pixel_loss, random_latent_crop, velocity_loss
from .stages import TrainingStage


@dataclass
class LatentBatch:
    """One training batch as every stage sees it.

    Attributes:
        z0, z1 (`torch.Tensor` of shape `(B, C, h, w)`): The HQ latents and the noise.
        lq (`torch.Tensor` of shape `(B, N, 4C)`): The packed LQ latents, in the base's dtype.
        embeds, pooled, img_ids, txt_ids, guidance: The rest of a controlled call's conditioning.
        t (`torch.Tensor` of shape `(B,)`): Flow times (paper 001 Eq. 5-6).
        hq_pixels (`torch.Tensor` of shape `(B, 3, H, W)`): The HQ images in [-1, 1] on the device.
        generator (`torch.Generator`): This micro-batch's seeded randomness (crops, exploration).
    """

    z0: torch.Tensor
    z1: torch.Tensor
    lq: torch.Tensor
    embeds: torch.Tensor
    pooled: torch.Tensor
    img_ids: torch.Tensor
    txt_ids: torch.Tensor
    guidance: torch.Tensor | None
    t: torch.Tensor
    hq_pixels: torch.Tensor
    generator: torch.Generator

    @property
    def size(self) -> tuple[int, int]:
        """Latent height and width."""
        return self.z0.shape[-2], self.z0.shape[-1]

    @property
    def packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`(z0, z1)` packed like the tokens the transformer sees."""
        return pack_latents(self.z0), pack_latents(self.z1)


class AdapterObjective:
    """
    Paper 001 §3.3: the velocity MSE of the controlled base at `z_t = (1 - t) z0 + t z1` (Eq. 7-8), plus `alpha` times
    the pixel loss of Eq. 9 on a random latent crop (decoded by the frozen VAE). The other stages use its velocity
    MSE as their "base" term.

    Args:
        model: `(latents, lq, embeds, pooled, t, img_ids, txt_ids, guidance) -> velocity`, packed, with gradients.
        decode: Latents `(B, C, h, w)` -> images in [-1, 1] (the frozen VAE).
        objective: The training configuration's `objective` section (`pixel_loss_weight`, `pixel_loss_form`,
            `pixel_loss_crop`).
        dtype: The frozen base's dtype (inputs are cast to it).
        autocast: The accelerator's autocast context for the decode.
    """

    def __init__(
        self, model, decode: Callable, objective, dtype: torch.dtype, autocast: Callable, pixel_loss_on: bool
    ):
        self.model, self.decode, self.objective, self.dtype, self.autocast = model, decode, objective, dtype, autocast
        self.pixel_loss_on = pixel_loss_on and objective.pixel_loss_weight > 0

    def velocity_terms(self, batch: LatentBatch) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        """`(velocity MSE, logs, predicted velocity, noisy latent)` at the batch's flow times."""
        z_t = interpolate(batch.z0, batch.z1, batch.t)
        h, w = batch.size
        v_pred = self.model(
            pack_latents(z_t).to(self.dtype),
            batch.lq,
            batch.embeds.to(self.dtype),
            batch.pooled.to(self.dtype),
            batch.t,
            batch.img_ids,
            batch.txt_ids,
            batch.guidance,
        )
        v_pred = unpack_latents(v_pred.float(), h, w)
        loss = velocity_loss(v_pred, batch.z1 - batch.z0)
        return loss, {"loss_mse": loss.item()}, v_pred, z_t

    def loss(self, batch: LatentBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss, logs, v_pred, z_t = self.velocity_terms(batch)
        if self.pixel_loss_on:
            objective = self.objective
            crop = random_latent_crop(
                [batch.z0, z_t, v_pred, batch.z1 - batch.z0], objective.pixel_loss_crop, batch.generator
            )
            with self.autocast():
                loss_pixel = pixel_loss(
                    self.decode, crop[0], crop[1], crop[2], crop[3], batch.t, objective.pixel_loss_form
                )
            loss = loss + objective.pixel_loss_weight * loss_pixel
            logs["loss_pixel"] = loss_pixel.item()
        logs["loss"] = loss.item()
        return loss, logs


class FrozenCopyStage(TrainingStage):
    """
    A stage that tunes a trained component against a frozen copy of it: distillation's teacher, RL's reference. The
    copy's hooks go on the shared base only while it rolls out ([`frozen_hooks`]); the trained one's come back after.
    Only conditioning kinds listing the stage in their `training_stages` support it; `--use_lora` is refused.

    Args:
        options: The stage's own section of the training configuration (`config.rl`, `config.distill`).
        component: The conditioning component being tuned (installed on `transformer`).
        model: The trainer's controlled model (the component on the base, with gradients).
        transformer: The frozen base.
        scheduler_config: FLUX's scheduler config (the resolution shift).
        dtype: The frozen base's dtype.
        base: The objective whose velocity MSE is the "base" term ([`AdapterObjective`]).
        teacher_steps: Euler steps of the frozen copy's trajectory (`config.run.teacher_steps`).
        decode: Latents `(B, C, h, w)` -> images in [-1, 1] (the frozen VAE), for stages that score images.
    """

    conditioning_support = True
    trains_base_lora = False

    def __init__(
        self,
        options,
        component,
        model,
        transformer,
        scheduler_config,
        teacher_steps: int = 20,
        dtype=torch.float32,
        base=None,
        decode=None,
    ):
        import copy

        from fluxir_hub.schedules import uniform_sigmas

        self.options, self.teacher_steps, self.dtype = options, teacher_steps, dtype
        self.model, self.transformer, self.base, self.decode = model, transformer, base, decode
        self.trained = component
        self.frozen = copy.deepcopy(component).requires_grad_(False).eval()
        self.scheduler_config = scheduler_config
        self.grid = uniform_sigmas(teacher_steps)

    @classmethod
    def from_trainer(cls, trainer, base) -> FrozenCopyStage:
        models = trainer.models
        return cls(
            getattr(trainer.config, cls.section),
            trainer.adapter,
            trainer.model,
            models.transformer,
            models.scheduler.config,
            teacher_steps=trainer.config.run.teacher_steps,
            dtype=trainer.weight_dtype,
            base=base,
            decode=trainer.decode,
        )

    def frozen_hooks(self):
        """A context in which the frozen copy's hooks are on the base (the trained component's return after it)."""
        from fluxir_hub.models.conditioning import hooks_of

        return hooks_of(self.frozen, self.transformer, then=self.trained)

    def frozen_velocity(self, latents, lq, embeds, pooled, sigma, img_ids, txt_ids, guidance) -> torch.Tensor:
        """The frozen copy's velocity at noise level `sigma` (inside [`frozen_hooks`]), in float32."""
        from .model import controlled_velocity

        timestep = torch.full((latents.shape[0],), float(sigma), device=latents.device)
        return controlled_velocity(
            self.transformer, self.frozen, latents.to(self.dtype), lq, embeds, pooled, timestep, img_ids, txt_ids,
            guidance,
        ).float()  # fmt: skip
