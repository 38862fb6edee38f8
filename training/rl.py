"""RL trajectory tuning of a trained FluxIR adapter (paper 002, FLUX-IR §4; `fluxir-train --stage rl`).

Exploration ("modulated SDE"): at one Euler step of the reference policy's trajectory (a frozen copy of the adapter,
refreshed from the policy every `rl_refresh_steps`), the step overshoots by a factor alpha in [1, 2) and is re-noised
so that its noise-to-signal ratio is the deterministic schedule's at the next step ([`modulated_sde_step`], the
relation in the authors' `sde_sampling`). Each rollout then follows the reference ODE to the end; its reward is the
negative pixel MSE of the decoded result to the ground truth. Per pair, the best of the rollouts and of the
reference's own ODE path is kept (reward-filtered imitation; the authors' code has the losses but not the selection).

Losses (the authors' `optimize_parameters_reinforce`), in two forms (`rl_loss_form`):

- `rollout`, the authors': the policy's own deterministic ODE from the start noise, with gradients, its state after the
  perturbed step pulled onto the kept rollout's state (L_traj) and its final latent onto the ground truth (L_GT); each
  step is checkpointed, so memory holds one step's activations (at the price of a second forward pass);
- `one-step`, the cheap stand-in: the policy's single step from the reference state against the kept state (L_traj),
  and its one-jump clean estimate from the kept state against the ground truth (L_GT): two policy evaluations instead
  of the whole trajectory's;

plus the ordinary flow-matching loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fluxir_hub.latents import unpack_latents
from fluxir_hub.schedules import euler_trajectory, shifted_sigmas

from .objectives import FrozenCopyStage
from .stages import register_stage


def modulated_sde_step(
    latents: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float, alpha: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """
    One exploratory step from noise level `sigma` to `sigma_next` (rectified flow, `x = (1 - s) x0 + s eps`).

    Overshoot the Euler step by `alpha` (per sample, `(B,)`), add fresh noise `beta * noise`, and rescale so that the
    data and noise weights sum to one with the noise-to-signal ratio of `sigma_next`:
    `(s - a D)^2 + beta^2 = (s - D)^2 (1 - s + a D)^2 / (1 - s + D)^2` with `D = sigma - sigma_next`. `alpha = 1` and
    zero noise is the Euler step. Alphas that would overshoot past noise level 0 are clipped to `sigma / D`.

    Args:
        latents, velocity, noise: `(B, ...)` tensors of one shape.
        alpha: `(B,)` overshoot factors >= 1.

    Returns:
        `(B, ...)` latents on the marginal of noise level `sigma_next`.
    """
    delta = sigma - sigma_next
    shape = (-1,) + (1,) * (latents.dim() - 1)
    alpha = alpha.to(latents).clamp(1.0, sigma / delta).view(shape)
    data = 1 - sigma + alpha * delta  # weight of x0 after the overshoot
    left = sigma - alpha * delta  # weight of the original noise after it
    beta_sq = ((sigma - delta) * data / (1 - sigma + delta)) ** 2 - left**2
    beta = beta_sq.clamp_min(0).sqrt()
    moved = latents - alpha * delta * velocity - beta * noise
    return moved / (data + (left**2 + beta**2).sqrt())


@register_stage
class RLTuner(FrozenCopyStage):
    """`--stage rl`: the reference policy, the exploration and the loss (arguments:
    [`~training.objectives.FrozenCopyStage`]; `decode` is needed)."""

    name = "rl"
    help = "RL trajectory tuning of `adapter_init` (paper 002 §4)"
    section = "rl"
    needs_trained_component = "tunes a trained adapter"
    card_summary = """

**RL-tuned** (paper 002's trajectory tuning with modulated SDEs): tuned from `{{ config.model.adapter_init }}` with
{{ options.rl_rollouts }} exploratory rollouts per pair, the best kept by fidelity to the ground truth."""
    card_loss = (
        "{{ options.rl_traj_weight }} x policy step vs kept rollout + {{ options.rl_gt_weight }} x clean estimate vs "
        "ground truth + {{ options.rl_base_weight }} x velocity MSE (reference: {{ config.run.teacher_steps }} steps, "
        "refreshed every {{ options.rl_refresh_steps }})"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy, self.reference = self.trained, self.frozen

    @classmethod
    def config_problems(cls, config) -> list[str]:
        steps = config.run.teacher_steps
        if not config.rl.rl_perturb_steps or any(not 0 <= k < steps - 1 for k in config.rl.rl_perturb_steps):
            return [
                f"`rl_perturb_steps` must be step indices from 0 to teacher_steps - 2 ({steps - 2}), got "
                f"{config.rl.rl_perturb_steps}."
            ]
        return []

    def prepare(self, trainer) -> None:
        if trainer.resumed:  # the reference restarts from the resumed policy
            self.refresh()

    def after_optimizer_step(self, step: int) -> None:
        if step % self.options.rl_refresh_steps == 0:
            self.refresh()

    def refresh(self) -> None:
        """Copy the policy's weights into the reference (every `rl_refresh_steps` optimizer steps)."""
        self.reference.load_state_dict(self.policy.state_dict())

    @torch.no_grad()
    def explore(self, transformer, z0, z1, lq, embeds, pooled, img_ids, txt_ids, guidance, hq_pixels, generator, size):
        """
        Roll out the reference to the chosen step, branch into `rl_rollouts` modulated steps (plus the ODE step),
        finish every branch with the reference ODE and keep each pair's best branch.

        Returns `(k, sigmas, x_k, kept_next, kept_reward, ode_reward)`: the perturbed step index, the shifted noise
        levels, the reference state at step k, the kept state at step k + 1 and the rewards of the kept and the ODE
        branches (`(B,)`).
        """
        options = self.options
        b = z1.shape[0]
        sigmas = shifted_sigmas(self.grid, z1.shape[1], self.scheduler_config)
        steps = options.rl_perturb_steps
        k = int(steps[int(torch.randint(len(steps), (1,), generator=generator))])
        n = options.rl_rollouts

        def rep(t):  # the conditioning of every branch
            return t.repeat(n + 1, *([1] * (t.dim() - 1)))

        def velocity(x, sigma, rows: int = 1):
            conditioning = (lq, embeds, pooled) if rows == 1 else (rep(lq), rep(embeds), rep(pooled))
            g = guidance if rows == 1 else rep(guidance)
            return self.frozen_velocity(x, *conditioning, sigma, img_ids, txt_ids, g)

        with self.frozen_hooks():  # the policy's hooks back afterwards, for the gradients
            x_k = euler_trajectory(velocity, z1.float(), sigmas[: k + 1])[0][-1]
            v_k = velocity(x_k, sigmas[k])
            low, high = options.rl_alpha
            alpha = low + (high - low) * torch.rand((n * b,), generator=generator)
            noise = torch.randn((n * b, *x_k.shape[1:]), generator=generator).to(x_k)
            branches = torch.cat(
                [
                    x_k + (float(sigmas[k + 1]) - float(sigmas[k])) * v_k,  # branch 0: the reference's own ODE step
                    modulated_sde_step(
                        x_k.repeat(n, 1, 1), v_k.repeat(n, 1, 1), float(sigmas[k]), float(sigmas[k + 1]), alpha, noise
                    ),
                ]
            )
            y = euler_trajectory(lambda x, s: velocity(x, s, rows=n + 1), branches, sigmas[k + 1 :])[0][-1]
        h, w = size
        pixels = self.decode(unpack_latents(y, h, w)).float()
        reward = -((pixels - rep(hq_pixels).float()) ** 2).flatten(1).mean(1)  # (n + 1) * b
        reward = reward.view(n + 1, b)
        best = reward.argmax(0)  # ties keep the ODE branch (index 0)
        kept = branches.view(n + 1, b, *branches.shape[1:])[best, torch.arange(b)]
        return k, sigmas, x_k, kept, reward[best, torch.arange(b)], reward[0]

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The RL loss of one [`~training.objectives.LatentBatch`], and its parts."""
        options, model = self.options, self.model
        base_loss, logs, _, _ = self.base.velocity_terms(batch)
        (z0, z1), lq, embeds, pooled = batch.packed, batch.lq, batch.embeds, batch.pooled
        img_ids, txt_ids, guidance = batch.img_ids, batch.txt_ids, batch.guidance
        k, sigmas, x_k, kept, kept_reward, ode_reward = self.explore(
            self.transformer,
            z0,
            z1,
            lq,
            embeds,
            pooled,
            img_ids,
            txt_ids,
            guidance,
            batch.hq_pixels,
            batch.generator,
            batch.size,
        )
        b = z1.shape[0]

        def policy(x: torch.Tensor, sigma: float) -> torch.Tensor:
            t = torch.full((b,), float(sigma), device=z1.device)
            return model(x.to(self.dtype), lq, embeds, pooled, t, img_ids, txt_ids, guidance).float()

        if options.rl_loss_form == "rollout":  # the policy's own ODE from the start, checkpointed per step
            states = euler_trajectory(policy, z1.float(), sigmas, checkpointed=True)[0]
            traj, to_gt = F.mse_loss(states[k + 1], kept), F.mse_loss(states[-1], z0.float())
        else:  # one step from the reference state; one jump to a clean estimate from the kept state
            step = x_k + (float(sigmas[k + 1]) - float(sigmas[k])) * policy(x_k, sigmas[k])
            traj = F.mse_loss(step, kept)
            estimate = kept - float(sigmas[k + 1]) * policy(kept, sigmas[k + 1])
            to_gt = F.mse_loss(estimate, z0.float())
        loss = options.rl_traj_weight * traj + options.rl_gt_weight * to_gt + options.rl_base_weight * base_loss
        gain = (kept_reward - ode_reward).mean().item()  # >= 0: how much the kept branch beat the ODE path
        logs.update(
            {
                "loss_traj": traj.item(),
                "loss_gt": to_gt.item(),
                "loss_base": base_loss.item(),
                "rl_step": k,
                "reward_ode": ode_reward.mean().item(),
                "reward_gain": gain,
                "psnr_ode": float(10 * math.log10(4 / max(1e-12, -ode_reward.mean().item()))),
                "loss": loss.item(),
            }
        )
        return loss, logs
