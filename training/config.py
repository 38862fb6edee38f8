"""Typed training configuration: a YAML/JSON file plus `--key value` overrides, saved with every checkpoint.

[`TrainConfig`] nests one typed section per concern (`run`: the stage, `model`, `data`, `optim`, `objective`, `rl`, `distill`,
`checkpoints`, `validation`), each checking its own values; the configuration adds the checks that span sections and
reports every problem at once. Settings keep their flat names everywhere a user meets them: `fluxir-train --rl_alpha`,
`TrainConfig(rl_alpha=...)`, `config.rl_alpha` (= `config.rl.rl_alpha`) and the flat `train_config.json`, so saved
configurations and command lines of earlier versions work unchanged; the project's own code reads the sections. The
conditioning kind's options are the kind's own (`fluxir_hub.models.ConditioningOptions`), given as one mapping,
`conditioning_options`; the flat flags that set them before (`LEGACY_OPTION_FLAGS`) still do.
"""

from __future__ import annotations

import json
import logging
import math
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

CONFIG_NAME = "train_config.json"
logger = logging.getLogger(__name__)

# Settings that may differ when resuming without changing what was trained so far.
RESUMABLE_KEYS = {
    "max_train_steps", "resume_from_checkpoint", "checkpointing_steps", "checkpoints_total_limit", "validation_steps",
    "num_validation_images", "validation_inference_steps", "report_to", "push_to_hub", "hub_model_id", "hub_private",
    "output_dir", "dataloader_shuffle_buffer", "dataloader_num_workers", "shard_base",
}  # fmt: skip


# The flat flags that set the built-in kinds' options before each kind owned its options
# (`fluxir_hub.models.ConditioningOptions`): flag -> (the `--conditioning` names it applies to, the option, the flag's
# default). `--rank 16` still means `--conditioning_options "{rank: 16}"`; configurations saved then hold all three.
LEGACY_OPTION_FLAGS: dict[str, tuple[tuple[str, ...], str, int]] = {
    "rank": (("fluxir",), "rank", 32),
    "ummf_lora_rank": (("ummf", "ummf-add"), "lora_rank", 16),
    "dra_adapter_dim": (("dra",), "adapter_dim", 320),
}


def _help(text: str) -> dict[str, str]:
    return {"help": text}


class OptionValues(dict):
    """`{option: value}` of the conditioning kind; on the command line a YAML mapping, e.g. `"{rank: 16}"`."""

    def __init__(self, values: Any = ()):
        if isinstance(values, str):
            import yaml

            values = yaml.safe_load(values) or {}
            if not isinstance(values, dict):
                raise ValueError(f"conditioning options must be a mapping such as '{{rank: 16}}', got {values!r}")
        super().__init__(values)


class _Section:
    """A section of [`TrainConfig`]: typed fields and the checks of its own values."""

    def check_types(self) -> list[str]:
        """Every field holds a value of its declared type (numbers given as text, e.g. `--max_train_steps abc`, are
        refused here rather than deep in the training loop)."""
        hints = get_type_hints(type(self))
        return [
            f"`{f.name}` must be {_describe(hints[f.name])}, got {getattr(self, f.name)!r} "
            f"({type(getattr(self, f.name)).__name__})."
            for f in fields(self)
            if not _matches(getattr(self, f.name), hints[f.name])
        ]

    def problems(self) -> list[str]:
        """The section's own problems, one message each."""
        return []

    def _non_negative(self, *names: str) -> list[str]:
        return [
            f"`{name}` must be a finite, non-negative number, got {getattr(self, name)}."
            for name in names
            if getattr(self, name) is not None
            and not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0)
        ]

    def _positive(self, *names: str) -> list[str]:
        return [f"`{n}` must be a positive integer, got {getattr(self, n)}." for n in names if getattr(self, n) < 1]


@dataclass
class StageConfig(_Section):
    """Which training stage runs, and the teacher trajectory the rl and distill stages share."""

    stage: str = field(
        default="adapter",
        metadata=_help("The registered training stage to run (listed at the end of --help)"),
    )
    teacher_steps: int = field(
        default=20, metadata=_help("distill, rl: Euler steps of the teacher's (reference policy's) trajectory")
    )

    def problems(self) -> list[str]:
        from .stages import get_stage

        try:
            get_stage(self.stage)
        except ValueError as err:
            return [str(err)]
        return self._positive("teacher_steps")


@dataclass
class ModelConfig(_Section):
    """The base model and the conditioning component that trains on it."""

    pretrained_model: str = field(
        default="black-forest-labs/FLUX.1-dev",
        metadata=_help(
            'Base FLUX.1 model: Hub id or local folder; "tiny"/"tiny-mid" are random offline models (tests)'
        ),
    )
    revision: str | None = field(default=None, metadata=_help("Revision (branch, tag or commit) of pretrained_model"))
    adapter_init: str | None = field(
        default=None,
        metadata=_help(
            "Start from this trained adapter (Hub id or folder) instead of copying the base (from_transformer)"
        ),
    )
    conditioning: str = field(
        default="fluxir",
        metadata=_help("The registered conditioning component to train (listed at the end of --help)"),
    )
    conditioning_options: OptionValues = field(
        default_factory=OptionValues,
        metadata=_help(
            'Options of the conditioning kind as a YAML mapping, e.g. "{rank: 16}" (each kind\'s are listed at the '
            "end of --help; unset ones keep the kind's defaults)"
        ),
    )
    use_lora: bool = field(
        default=False,
        metadata=_help('Train a LoRA "diffusion adapter" on the base attention jointly (paper 004 §3.2)'),
    )
    lora_rank: int = field(default=32, metadata=_help("Rank of that LoRA"))

    def __post_init__(self) -> None:
        if isinstance(self.conditioning_options, (dict, str)):  # from JSON/YAML or a caller: one type
            self.conditioning_options = OptionValues(self.conditioning_options)

    def problems(self) -> list[str]:
        out = self._positive("lora_rank")
        from fluxir_hub.models import conditioning_names

        names = list(conditioning_names())
        if self.conditioning not in names:
            return out + [f"`conditioning` must be {', '.join(names[:-1])} or {names[-1]}, got {self.conditioning!r}."]
        kind = conditioning_names()[self.conditioning][0]
        if self.use_lora and kind.lora_targets is not None:
            out.append(f"`--conditioning {self.conditioning}` brings its own LoRA; leave `use_lora` off.")
        return out + self._option_problems(kind.options)

    def _option_problems(self, options: type) -> list[str]:
        hints = get_type_hints(options)
        unknown = sorted(set(self.conditioning_options) - set(hints))
        if unknown:
            known = ", ".join(f"{f.name} (default {f.default})" for f in fields(options)) or "none"
            return [f"`conditioning_options` {unknown} are not options of {self.conditioning}; its options: {known}."]
        typed = [
            f"`conditioning_options` {name} must be {_describe(hints[name])}, got {value!r}."
            for name, value in self.conditioning_options.items()
            if not _matches(value, hints[name])
        ]
        return typed or options(**self.conditioning_options).problems()

    def component_options(self) -> dict[str, Any]:
        """The `from_transformer` options of the chosen kind: its registered name's fixed ones, then its options'
        defaults with `conditioning_options` applied."""
        from fluxir_hub.models import conditioning_names

        kind, fixed = conditioning_names()[self.conditioning]
        return {**fixed, **asdict(kind.options(**self.conditioning_options))}


@dataclass
class DataConfig(_Section):
    """The training pairs: a FluxGen dataset (Hub id or folder), or HQ images degraded on the fly."""

    dataset: str | None = field(
        default=None, metadata=_help("A FluxGen dataset: Hub id or local folder with hq/lq image columns")
    )
    dataset_split: str = field(default="train", metadata=_help("Split of `dataset` to train on"))
    streaming: bool = field(
        default=False, metadata=_help("Stream `dataset` instead of downloading it first (for very large sets)")
    )
    dataloader_shuffle_buffer: int = field(default=1000, metadata=_help("Shuffle buffer of a streamed dataset"))
    dataloader_num_workers: int = field(
        default=0,
        metadata=_help(
            "Processes that load, crop and degrade the next batches while the GPU trains (0: in the training process);"
            " the batches are the same for any number"
        ),
    )
    hq_folder: str | None = field(
        default=None, metadata=_help("A folder of HQ images, degraded on the fly (instead of `dataset`)")
    )
    degradation_preset: str = field(
        default="seesr",
        metadata=_help(
            "Degradation preset for `hq_folder`: seesr, realesrgan, mild, a task (motion_blur, low_light, underwater, "
            "denoise, raindrop, desnow) or mixed (all seven tasks, paper 002)"
        ),
    )
    task_weights: str | None = field(
        default=None,
        metadata=_help(
            "With degradation_preset mixed: task=weight pairs, e.g. sr=5,denoise=2 (default: the authors' mix)"
        ),
    )
    scale: int = field(default=4, metadata=_help("Super-resolution HQ / LQ size ratio (other tasks keep the size)"))
    task_prompts: str = field(
        default="auto",
        metadata=_help(
            "Train with each task's fixed prompt (paper 002's all-in-one model): on, off, or auto (on when any pair "
            "is not super-resolution). The adapter stores the prompts; the pipeline's `task=` uses them"
        ),
    )
    crop_sizes: list[str] = field(
        default_factory=lambda: ["1024x768", "768x768", "512x768"],
        metadata=_help("Training crops as WIDTHxHEIGHT (one size per batch), e.g. 1024x768 768x768"),
    )
    crop_mode: str = field(
        default="random",
        metadata=_help("Where each crop sits: random, or center (paper 001: centred crops of a random size)"),
    )
    prompt_column: str | None = field(
        default="prompt", metadata=_help("Dataset column with the prompt of each pair (None: empty prompts)")
    )
    prompt_drop_rate: float = field(default=0.1, metadata=_help("Fraction of prompts replaced by the empty prompt"))

    def __post_init__(self) -> None:
        # Crops also come as [width, height] pairs (older configs); keep one form, "WIDTHxHEIGHT".
        self.crop_sizes = [
            f"{c[0]}x{c[1]}" if isinstance(c, (list, tuple)) and len(c) == 2 else c for c in self.crop_sizes
        ]

    @property
    def crop_pairs(self) -> list[tuple[int, int]]:
        """`crop_sizes` as `(width, height)` pairs."""
        pairs = []
        for crop in self.crop_sizes:
            try:
                width, height = (int(v) for v in str(crop).lower().split("x"))
            except ValueError:
                raise ValueError(f"Crop sizes are WIDTHxHEIGHT, e.g. 1024x768; got {crop!r}.") from None
            pairs.append((width, height))
        return pairs

    @property
    def degradation_config(self):
        """The on-the-fly degradation preset, with `task_weights` applied to `mixed`."""
        from fluxir_hub.degradations import PRESETS, MixedConfig, parse_weights

        if self.task_weights is not None:
            return MixedConfig(weights=parse_weights(self.task_weights))
        return PRESETS[self.degradation_preset]

    def problems(self) -> list[str]:
        out = []
        if (self.dataset is None) == (self.hq_folder is None):
            out.append("Give exactly one data source: `dataset` (FluxGen id or folder) or `hq_folder`.")
        if self.hq_folder is not None and not Path(self.hq_folder).is_dir():
            out.append(f"`hq_folder` {self.hq_folder} is not a folder.")
        if self.scale < 1:
            out.append(f"`scale` must be a positive integer, got {self.scale}.")
        try:
            pairs = self.crop_pairs
        except ValueError as err:
            pairs = None
            out.append(str(err))
        if pairs is not None and (not pairs or any(s[0] % 16 or s[1] % 16 or min(s) < 16 for s in pairs)):
            out.append(f"`crop_sizes` must be WIDTHxHEIGHT sizes in multiples of 16, got {self.crop_sizes}.")
        elif pairs and self.scale >= 1 and any(s[0] % (16 * self.scale) or s[1] % (16 * self.scale) for s in pairs):
            out.append(
                f"Each crop side must be a multiple of {16 * self.scale} so the LQ crop is a whole number of pixels "
                f"at x{self.scale} and packs into 2x2 latent tokens; got {self.crop_sizes}."
            )
        if self.crop_mode not in ("random", "center"):
            out.append(f"`crop_mode` must be 'random' or 'center', got {self.crop_mode!r}.")
        if self.dataloader_num_workers < 0:
            out.append(f"`dataloader_num_workers` must be 0 or more, got {self.dataloader_num_workers}.")
        elif self.dataloader_num_workers and self.streaming:
            out.append(
                "`dataloader_num_workers` needs a local dataset or `hq_folder`: each worker of a streamed dataset would "
                "decode every row. Leave it at 0 with `streaming`."
            )
        if not 0 <= self.prompt_drop_rate <= 1:
            out.append(f"`prompt_drop_rate` must be in [0, 1], got {self.prompt_drop_rate}.")
        if self.task_prompts not in ("auto", "on", "off"):
            out.append(f"`task_prompts` must be auto, on or off, got {self.task_prompts!r}.")
        from fluxir_hub.degradations import PRESETS

        if self.degradation_preset not in PRESETS:
            out.append(
                f"Unknown `degradation_preset` {self.degradation_preset!r}; choose one of {', '.join(PRESETS)}."
            )
        elif self.task_weights is not None and self.degradation_preset != "mixed":
            out.append("`task_weights` needs `degradation_preset mixed`.")
        else:
            try:
                self.degradation_config  # noqa: B018 (checks the task weights)
            except ValueError as err:
                out.append(str(err))
        return out


@dataclass
class OptimConfig(_Section):
    """Optimisation (paper 001 §4.1: AdamW, lr 1e-5, batch 64 over 4 GPUs) and precision."""

    seed: int = field(
        default=0,
        metadata=_help("Seed of data order, crops, degradations and noise (a resumed run continues exactly)"),
    )
    train_batch_size: int = field(default=1, metadata=_help("Pairs per process per micro-batch"))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Micro-batches per optimiser step"))
    max_train_steps: int = field(default=1000, metadata=_help("Optimiser steps in total"))
    learning_rate: float = field(default=1e-5, metadata=_help("AdamW learning rate (paper 001: 1e-5)"))
    lr_scheduler: str = field(
        default="constant", metadata=_help("diffusers learning-rate schedule: constant, cosine, linear, ...")
    )
    lr_warmup_steps: int = field(default=0, metadata=_help("Warm-up steps of the schedule"))
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW beta1"))
    adam_beta2: float = field(default=0.999, metadata=_help("AdamW beta2"))
    adam_weight_decay: float = field(default=1e-2, metadata=_help("AdamW weight decay"))
    adam_epsilon: float = field(default=1e-8, metadata=_help("AdamW epsilon"))
    use_8bit_adam: bool = field(default=False, metadata=_help("bitsandbytes' 8-bit AdamW (less optimiser memory)"))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm (0: off)"))
    mixed_precision: str = field(
        default="bf16", metadata=_help("no, fp16 or bf16 (the frozen base is stored in this precision)")
    )
    gradient_checkpointing: bool = field(
        default=True, metadata=_help("Recompute activations in the backward pass (much less memory)")
    )
    shard_base: bool = field(
        default=False,
        metadata=_help(
            "Shard the frozen base over the processes (PyTorch FSDP2; the adapter stays replicated): for GPUs that "
            "cannot hold the whole base"
        ),
    )

    def problems(self) -> list[str]:
        out = [] if 0 <= self.seed < 2**63 else [f"`seed` must be from 0 to 2**63 - 1, got {self.seed}."]
        out += self._non_negative("learning_rate", "max_grad_norm")
        out += self._positive("train_batch_size", "gradient_accumulation_steps", "max_train_steps")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            out.append(f"`mixed_precision` must be no, fp16 or bf16, got {self.mixed_precision!r}.")
        return out


@dataclass
class ObjectiveConfig(_Section):
    """The flow-matching objective every stage builds on, and the adapter stage's pixel loss (paper 001 §3.3)."""

    timestep_eps: float = field(
        default=0.05, metadata=_help("eps of the clamped-uniform timestep sampler (paper 001 Eq. 5-6)")
    )
    guidance_scale: float = field(default=3.5, metadata=_help("Distilled guidance fed to the base during training"))
    pixel_loss_weight: float = field(
        default=1.0, metadata=_help("alpha of paper 001 Eq. 10; 0 turns the pixel loss off")
    )
    pixel_loss_form: str = field(
        default="printed", metadata=_help("printed (Eq. 9 as printed) or x0 (decoded x0 estimate against the data)")
    )
    pixel_loss_crop: int | None = field(
        default=64,
        metadata=_help("Side (latent pixels) of the random crop decoded for the pixel loss; None: the whole latent"),
    )

    def problems(self) -> list[str]:
        out = self._non_negative("timestep_eps", "guidance_scale")
        if self.pixel_loss_form not in ("printed", "x0"):
            out.append(f"`pixel_loss_form` must be 'printed' or 'x0', got {self.pixel_loss_form!r}.")
        return out


@dataclass
class RLConfig(_Section):
    """`--stage rl` (paper 002 §4): modulated-SDE exploration from a reference copy, the best rollout kept."""

    rl_rollouts: int = field(
        default=4, metadata=_help("rl: exploratory rollouts per pair (besides the reference's own ODE path)")
    )
    rl_perturb_steps: list[int] = field(
        default_factory=lambda: [2, 3, 4, 5, 6, 7, 8],
        metadata=_help("rl: Euler step indices one of which (drawn per batch) is replaced by the modulated SDE step"),
    )
    rl_alpha: list[float] = field(
        default_factory=lambda: [1.0, 2.0], metadata=_help("rl: range [low, high) of the overshoot factor alpha")
    )
    rl_traj_weight: float = field(
        default=1.0, metadata=_help("rl: weight of the policy's step against the kept rollout's state (authors: 1)")
    )
    rl_gt_weight: float = field(
        default=1.0,
        metadata=_help("rl: weight of the policy's clean-image estimate from the kept state against GT (authors: 1)"),
    )
    rl_base_weight: float = field(default=1.0, metadata=_help("rl: weight of the ordinary flow-matching loss"))
    rl_loss_form: str = field(
        default="one-step",
        metadata=_help(
            "rl: one-step (the policy's single step from the reference state and its one-jump clean estimate) or "
            "rollout (the authors': the policy's own ODE from the start, with gradients, checkpointed per step, "
            "for both L_traj and L_GT)"
        ),
    )
    rl_refresh_steps: int = field(
        default=50, metadata=_help("rl: copy the policy into the reference every this many optimizer steps")
    )

    def problems(self) -> list[str]:
        out = self._non_negative("rl_traj_weight", "rl_gt_weight", "rl_base_weight") + self._positive(
            "rl_refresh_steps"
        )
        if len(self.rl_alpha) != 2 or not 1 <= self.rl_alpha[0] < self.rl_alpha[1]:
            out.append(f"`rl_alpha` must be a range [low, high) with 1 <= low < high, got {self.rl_alpha}.")
        if self.rl_rollouts < 0:
            out.append(f"`rl_rollouts` must be >= 0 (0: no exploration), got {self.rl_rollouts}.")
        if self.rl_loss_form not in ("one-step", "rollout"):
            out.append(f"`rl_loss_form` must be one-step or rollout, got {self.rl_loss_form!r}.")
        return out


@dataclass
class DistillConfig(_Section):
    """`--stage distill` (paper 002 §5): a copy of a trained adapter learns K-jump sampling."""

    num_student_steps: int = field(default=4, metadata=_help("distill: steps K of the student (1, 2, 4, ...)"))
    distill_schedule: str = field(
        default="cost-aware",
        metadata=_help("distill: cost-aware (least summed jump cost on the teacher's grid) or uniform"),
    )
    schedule_search_batches: int = field(
        default=4, metadata=_help("distill: training batches whose teacher trajectories price the jumps")
    )
    distill_intermediate_weight: float = field(
        default=100.0, metadata=_help("distill: weight of the student's states against the teacher's at its jumps")
    )
    distill_teacher_weight: float = field(
        default=300.0, metadata=_help("distill: weight of the student's final latent against the teacher's")
    )
    distill_gt_weight: float | None = field(
        default=None,
        metadata=_help(
            "distill: weight of the student's final latent against the ground truth (default: the authors' per K: "
            "600 for 4 or more steps, 300 for 2 and 1)"
        ),
    )
    distill_distance: str = field(
        default="auto",
        metadata=_help("distill: mse, l1, or auto (the authors': L1 for a 1-step student, MSE otherwise)"),
    )
    distill_start_lq_weight: float = field(
        default=0.0,
        metadata=_help(
            "distill: start the teacher's and the student's trajectories from (1 - w) noise + w LQ latent instead of "
            "pure noise (the authors' FLUX start mixes about 0.03); saved in the adapter, the pipeline starts there"
        ),
    )
    distill_base_weight: float = field(
        default=1.0, metadata=_help("distill: weight of the ordinary flow-matching loss")
    )

    def problems(self) -> list[str]:
        out = self._non_negative(
            "distill_intermediate_weight",
            "distill_teacher_weight",
            "distill_gt_weight",
            "distill_base_weight",
            "distill_start_lq_weight",
        )
        out += self._positive("num_student_steps", "schedule_search_batches")
        if self.distill_schedule not in ("cost-aware", "uniform"):
            out.append(f"`distill_schedule` must be 'cost-aware' or 'uniform', got {self.distill_schedule!r}.")
        if self.distill_distance not in ("auto", "mse", "l1"):
            out.append(f"`distill_distance` must be auto, mse or l1, got {self.distill_distance!r}.")
        if not 0 <= self.distill_start_lq_weight < 1:
            out.append(f"`distill_start_lq_weight` must be in [0, 1), got {self.distill_start_lq_weight}.")
        return out

    @property
    def resolved_distill_gt_weight(self) -> float:
        """The ground-truth weight: the given one, else the authors' for this K (their 4-step student x600, 2- and
        1-step x300)."""
        if self.distill_gt_weight is not None:
            return self.distill_gt_weight
        return 600.0 if self.num_student_steps >= 4 else 300.0

    @property
    def resolved_distill_distance(self) -> str:
        """The distance: the given one, else the authors' (L1 for a 1-step student, MSE otherwise)."""
        if self.distill_distance != "auto":
            return self.distill_distance
        return "l1" if self.num_student_steps == 1 else "mse"


@dataclass
class CheckpointConfig(_Section):
    """Where the run writes, how often it checkpoints and resumes, and the EMA of the trained weights."""

    output_dir: str = field(
        default="fluxir-adapter", metadata=_help("Where checkpoints, the final adapter and its card go")
    )
    checkpointing_steps: int = field(default=500, metadata=_help("Save a checkpoint every this many steps"))
    checkpoints_total_limit: int | None = field(
        default=3, metadata=_help("Keep at most this many checkpoints (None: all)")
    )
    resume_from_checkpoint: str | None = field(default=None, metadata=_help('Resume: "latest" or a checkpoint folder'))
    use_ema: bool = field(
        default=False,
        metadata=_help("Keep an exponential moving average of the adapter's weights (saved instead of the raw ones)"),
    )
    ema_decay: float = field(default=0.9999, metadata=_help("EMA decay"))

    def problems(self) -> list[str]:
        out = self._positive("checkpointing_steps") + self._non_negative("ema_decay")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            out.append(
                f"`checkpoints_total_limit` must be at least 1 (or null for no limit), got "
                f"{self.checkpoints_total_limit}: a limit of 0 would delete every checkpoint."
            )
        return out


@dataclass
class ValidationConfig(_Section):
    """Validation restorations, trackers and publishing to the Hub."""

    validation_steps: int | None = field(
        default=500, metadata=_help("Restore validation images every this many steps (None: never)")
    )
    num_validation_images: int = field(default=2, metadata=_help("Validation images per run"))
    validation_inference_steps: int = field(default=20, metadata=_help("Denoising steps of validation restorations"))
    validation_metrics: list[str] = field(
        default_factory=lambda: ["musiq"], metadata=_help("pyiqa metrics logged at validation")
    )
    report_to: str = field(
        default="tensorboard", metadata=_help('accelerate tracker (tensorboard, wandb, ...) or "none"')
    )
    push_to_hub: bool = field(default=False, metadata=_help("Upload the final adapter with its card to the Hub"))
    hub_model_id: str | None = field(default=None, metadata=_help("Hub model repo for push_to_hub (org/name)"))
    hub_private: bool = field(default=False, metadata=_help("Create that repo as private"))

    def problems(self) -> list[str]:
        out = self._positive("num_validation_images", "validation_inference_steps")
        if self.push_to_hub and not self.hub_model_id:
            out.append("`push_to_hub` needs `hub_model_id` (e.g. your-org/fluxir-adapter).")
        return out


SECTIONS: dict[str, type[_Section]] = {
    "run": StageConfig, "model": ModelConfig, "data": DataConfig, "optim": OptimConfig,
    "objective": ObjectiveConfig, "rl": RLConfig, "distill": DistillConfig, "checkpoints": CheckpointConfig,
    "validation": ValidationConfig,
}  # fmt: skip
_SECTION_OF = {f.name: section for section, cls in SECTIONS.items() for f in fields(cls)}


class TrainConfig:
    """
    Every setting of `fluxir-train`, in typed sections (see the module docstring): `TrainConfig(learning_rate=1e-5,
    dataset="org/pairs")` takes the flat names, `config.optim.learning_rate` and `config.learning_rate` read the same
    value, [`validate`] reports every problem in one message.
    """

    sections: ClassVar[dict[str, type[_Section]]] = SECTIONS

    def __init__(self, **settings: Any):
        settings = _apply_legacy_option_flags(settings)
        unknown = sorted(set(settings) - set(_SECTION_OF))
        if unknown:
            raise TypeError(f"TrainConfig got unknown setting(s) {unknown}; known: {sorted(_SECTION_OF)}.")
        for name, cls in SECTIONS.items():
            values = {key: value for key, value in settings.items() if _SECTION_OF[key] == name}
            object.__setattr__(self, name, cls(**values))

    def __getattr__(self, name: str) -> Any:  # a flat name reads its section's field
        section = _SECTION_OF.get(name)
        if name in LEGACY_OPTION_FLAGS:  # `config.rank` of code written before the kinds owned their options
            names, option, default = LEGACY_OPTION_FLAGS[name]
            model = self.__dict__["model"]
            return model.conditioning_options.get(option, default) if model.conditioning in names else default
        if section is None:
            for owner in ("data", "distill"):  # derived values of a section, e.g. `crop_pairs`
                if hasattr(type(self.__dict__.get(owner)), name):
                    return getattr(self.__dict__[owner], name)
            raise AttributeError(f"'TrainConfig' has no setting {name!r}")
        return getattr(self.__dict__[section], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SECTION_OF:
            setattr(self.__dict__[_SECTION_OF[name]], name, value)
        elif name in SECTIONS:
            object.__setattr__(self, name, value)
        elif name in LEGACY_OPTION_FLAGS:  # `config.rank = 16`: the option, as the flag sets it
            model = self.__dict__["model"]
            settings = _apply_legacy_option_flags(
                {"conditioning": model.conditioning, "conditioning_options": model.conditioning_options, name: value}
            )
            model.conditioning_options = settings["conditioning_options"]
        else:
            raise AttributeError(f"'TrainConfig' has no setting {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def validate(self) -> None:
        """Check every setting; all problems are reported together in one `ValueError`, one line each."""
        problems = self.problems()
        if len(problems) == 1:
            raise ValueError(problems[0])
        if problems:
            raise ValueError(
                f"{len(problems)} problems in the training configuration:\n" + "\n".join(f"- {p}" for p in problems)
            )

    def problems(self) -> list[str]:
        """Every problem of this configuration, one message each (empty when it is valid): each section's own, then
        those between sections."""
        typed = [p for name in SECTIONS for p in getattr(self, name).check_types()]
        if typed:  # the value checks need the declared types
            return typed
        sections = [p for name in SECTIONS for p in getattr(self, name).problems()]
        return sections + self._cross_section_problems()

    def _cross_section_problems(self) -> list[str]:
        from fluxir_hub.models import conditioning_names

        from .stages import training_stages

        model, stage = self.model, self.run.stage
        spec = training_stages().get(stage)
        if spec is None:
            return []
        out = []
        kind = conditioning_names().get(model.conditioning, (None, None))[0]
        if kind is not None and spec.conditioning_support and stage not in kind.training_stages:
            able = [name for name, (other, _) in conditioning_names().items() if stage in other.training_stages]
            out.append(
                f"`--stage {stage}` works with `--conditioning {' or '.join(able)}` only: {model.conditioning} "
                f"supports `--stage {' or '.join(kind.training_stages)}`."
            )
        if kind is not None and self.optim.gradient_checkpointing and kind.gradient_checkpointing_refusal:
            out.append(
                f"`--conditioning {model.conditioning}` needs `--gradient_checkpointing false`: "
                f"{kind.gradient_checkpointing_refusal}."
            )
        if spec.needs_trained_component and not model.adapter_init:
            out.append(
                f"`--stage {stage}` {spec.needs_trained_component}: pass it as `--adapter_init` (Hub id or folder). "
                "Train one first with the default `--stage adapter`."
            )
        if self.optim.shard_base and (model.use_lora or (kind is not None and kind.lora_targets is not None)):
            out.append(
                "`shard_base` shards the frozen base only: leave `use_lora` off and use a conditioning without a base "
                f"LoRA (not {model.conditioning})."
            )
        if not spec.trains_base_lora and model.use_lora:
            out.append(f"`use_lora` is not for `--stage {stage}`: it trains the adapter only.")
        return out + spec.config_problems(self)

    def to_dict(self) -> dict[str, Any]:
        """The flat settings (as `train_config.json` stores them)."""
        return {key: value for name in SECTIONS for key, value in asdict(getattr(self, name)).items()}

    def to_nested_dict(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From flat settings, or sections of them (`{"optim": {"learning_rate": ...}}`); unknown keys are refused."""
        flat = {}
        for key, value in data.items():
            if key in SECTIONS and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        unknown = sorted(set(flat) - set(_SECTION_OF) - set(LEGACY_OPTION_FLAGS))
        if unknown:
            raise ValueError(f"Unknown config key(s) {unknown}. Known keys: {sorted(_SECTION_OF)}.")
        return cls(**flat)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of config keys to values.")
        return cls.from_dict(data)

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def differences(self, other: TrainConfig) -> list[str]:
        a, b = self._comparable_dict(), other._comparable_dict()
        return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a) if a[k] != b[k] and k not in RESUMABLE_KEYS]

    def _comparable_dict(self) -> dict[str, Any]:
        """`to_dict` with the conditioning options in full (a default left unset equals the same value given)."""
        out = self.to_dict()
        try:
            out["conditioning_options"] = self.model.component_options()
        except (KeyError, TypeError):  # an unknown kind or option: compared as given
            pass
        return out


def _apply_legacy_option_flags(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with each old flat option flag (`LEGACY_OPTION_FLAGS`) moved into `conditioning_options` (the flag
    wins over the same option there, as an option given on the command line wins over a file). A flag of another
    kind is dropped, as it was ignored before, with a warning when it is not its default (every configuration saved
    then holds all of them)."""
    given = [flag for flag in LEGACY_OPTION_FLAGS if flag in settings]
    conditioning = settings.get("conditioning", ModelConfig.conditioning)
    # DRA's LoRA took `lora_rank` (the `use_lora` LoRA's rank, which stays a setting of its own) when set
    dra_rank = conditioning == "dra" and settings.get("lora_rank", 32) != 32
    if not (given or dra_rank):
        return settings
    settings = dict(settings)
    values = [settings.pop(flag) for flag in given]
    options = settings.get("conditioning_options")
    if not isinstance(options, (dict, str, type(None))):
        return settings  # options of the wrong type: reported as such
    options = OptionValues(options or {})
    if dra_rank:
        options.setdefault("lora_rank", settings["lora_rank"])
    for flag, value in zip(given, values, strict=True):
        names, option, default = LEGACY_OPTION_FLAGS[flag]
        if conditioning in names:
            options[option] = value
        elif value != default:
            logger.warning(
                f"`{flag}` sets an option of `--conditioning {' or '.join(names)}`, not of {conditioning}: ignored. "
                f"Give {conditioning}'s options as `conditioning_options` (listed at the end of `fluxir-train "
                "--help`)."
            )
    settings["conditioning_options"] = options
    return settings


def setting_types() -> dict[str, Any]:
    """The declared type of every flat setting."""
    return {key: hint for cls in SECTIONS.values() for key, hint in get_type_hints(cls).items()}


def _matches(value: Any, expected: Any) -> bool:
    origin, args = get_origin(expected), get_args(expected)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    origin, args = get_origin(expected), get_args(expected)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    return {
        int: "an integer", float: "a number", bool: "true or false", str: "text", type(None): "null",
        OptionValues: "a mapping of option names to values",
    }.get(expected, str(expected))  # fmt: skip


def parse_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply `key=value` overrides; values are parsed as YAML (numbers, booleans, lists, null)."""
    import yaml

    data = config.to_dict()
    hints = setting_types()
    for item in items:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like key=value.")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        parsed = yaml.safe_load(value)
        # YAML reads "1e-5" (no dot) as text; a float field takes it as the number it is.
        if (
            isinstance(parsed, str)
            and _matches(0.5, hints.get(key, str))
            and not _matches(parsed, hints.get(key, str))
        ):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        data[key] = parsed
    return TrainConfig.from_dict(data)
