"""Training of the FluxIR adapter (paper 001 §3.3): `fluxir-train`, or `training.Trainer` from Python."""

from .losses import pixel_loss, sample_timesteps, velocity_loss

__all__ = ["pixel_loss", "sample_timesteps", "velocity_loss"]
