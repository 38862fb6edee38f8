"""Training stages, one registry: a stage is what `fluxir-train --stage NAME` optimises and how it plugs into the
trainer's loop. The loop, data, checkpoints and resume stay the trainer's; a stage brings its loss, its hooks, its
checks and its model-card text, and registers itself:

    @register_stage
    class MyStage(TrainingStage):
        name = "my-stage"

        @classmethod
        def from_trainer(cls, trainer, base):
            return cls()

        def loss(self, batch):  # a `training.objectives.LatentBatch`
            ...

`fluxir-train --stage my-stage` (or `TrainConfig(stage="my-stage")`) then trains it; no other file names it. The
built-in stages: `adapter` ([`AdapterStage`]), `rl` (`training.rl.RLTuner`), `distill` (`training.distill.Distiller`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

_STAGES: dict[str, type[TrainingStage]] = {}


class TrainingStage:
    """
    The contract of a training stage. Class attributes:

    - `name`: the `--stage` value; `help`: what it trains, for `fluxir-train --help`.
    - `section`: the [`~training.config.TrainConfig`] section holding its own options (`"rl"`), or None.
    - `needs_trained_component`: when set, the stage tunes a trained component given as `--adapter_init`; the text
      says what it does with it ("tunes a trained adapter").
    - `trains_base_lora`: whether `--use_lora` (a LoRA on the base, trained alongside) may be on.
    - `conditioning_support`: whether only conditioning kinds listing `name` in their `training_stages` can run it.
    - `pixel_loss`: whether the base objective's pixel loss (paper 001 Eq. 9) is on.
    - `own_schedule`: whether the trained component carries its own sampling schedule (a distilled student).
    - `card_summary`, `card_loss`: model-card text (Jinja, rendered with `config` and `options`, its own section):
      a paragraph after the component's description (starting with a blank line), and the loss row of the training
      table.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    section: ClassVar[str | None] = None
    needs_trained_component: ClassVar[str | None] = None
    trains_base_lora: ClassVar[bool] = True
    conditioning_support: ClassVar[bool] = False
    pixel_loss: ClassVar[bool] = False
    own_schedule: ClassVar[bool] = False
    card_summary: ClassVar[str] = ""
    card_loss: ClassVar[str] = "velocity MSE"

    @classmethod
    def from_trainer(cls, trainer, base) -> TrainingStage:
        """The stage for `trainer` (a [`~training.trainer.Trainer`] with its models, component and controlled model
        set up); `base` is the [`~training.objectives.AdapterObjective`] every stage may add as its "base" term."""
        raise NotImplementedError

    @classmethod
    def config_problems(cls, config) -> list[str]:
        """What is wrong in `config` for this stage, one message each (checked with the rest of the config)."""
        return []

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """`(loss, logs)` on one [`~training.objectives.LatentBatch`]; `logs["loss"]` is what the progress bar shows."""
        raise NotImplementedError

    def prepare(self, trainer) -> None:
        """Called once after setup and any resume, before the first step (`trainer.resumed` says which)."""

    def after_optimizer_step(self, step: int) -> None:
        """Called after each optimizer step; `step` counts them from 1."""


def register_stage(cls: type[TrainingStage]) -> type[TrainingStage]:
    """Class decorator: make `cls` the stage `fluxir-train --stage cls.name` runs."""
    _STAGES[cls.name] = cls
    return cls


def training_stages() -> dict[str, type[TrainingStage]]:
    """Every registered stage by name, the built-in ones first."""
    import importlib

    for module in ("rl", "distill"):  # they register their stages on import
        importlib.import_module(f"{__package__}.{module}")
    return dict(_STAGES)


def get_stage(name: str) -> type[TrainingStage]:
    stages = training_stages()
    if name not in stages:
        names = [repr(n) for n in stages]
        raise ValueError(f"`stage` must be {', '.join(names[:-1])} or {names[-1]}, got {name!r}.")
    return stages[name]


def render_card_text(text: str, **values: Any) -> str:
    """A card snippet (a stage's, a conditioning kind's) rendered with `values`."""
    import jinja2

    return jinja2.Template(text, keep_trailing_newline=True).render(**values)


@register_stage
class AdapterStage(TrainingStage):
    """`--stage adapter` (paper 001 §3.3): the component trained from scratch (or from `adapter_init`) with the
    velocity MSE plus the pixel loss: [`~training.objectives.AdapterObjective`] as it is."""

    name = "adapter"
    help = "train the conditioning component, from scratch or from `adapter_init`"
    pixel_loss = True
    card_loss = (
        "velocity MSE + {{ config.objective.pixel_loss_weight }} x pixel L1 "
        "({{ config.objective.pixel_loss_form }} form)"
    )

    def __init__(self, objective):
        self.objective = objective

    @classmethod
    def from_trainer(cls, trainer, base) -> AdapterStage:
        return cls(base)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective.loss(batch)
