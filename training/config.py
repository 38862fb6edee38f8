"""Typed training configuration: a YAML/JSON file plus `--key value` overrides, saved with every checkpoint."""

from __future__ import annotations

import json
import math
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

CONFIG_NAME = "train_config.json"

# Settings that may differ when resuming without changing what was trained so far.
RESUMABLE_KEYS = {
    "max_train_steps", "resume_from_checkpoint", "checkpointing_steps", "checkpoints_total_limit", "validation_steps",
    "num_validation_images", "validation_inference_steps", "report_to", "push_to_hub", "hub_model_id", "hub_private",
    "output_dir", "dataloader_shuffle_buffer",
}  # fmt: skip


@dataclass
class TrainConfig:
    # models
    pretrained_model: str = "black-forest-labs/FLUX.1-dev"  # Hub id or folder; "tiny"/"tiny-mid": random, offline
    revision: str | None = None
    adapter_init: str | None = None  # start from a trained adapter (id or folder) instead of from_transformer
    rank: int = 32  # SE rank (paper 001 Table 2)
    # data: a FluxGen dataset (Hub id or folder) or a folder of HQ images degraded on the fly
    dataset: str | None = None
    dataset_split: str = "train"
    streaming: bool = False
    dataloader_shuffle_buffer: int = 1000
    hq_folder: str | None = None
    degradation_preset: str = "seesr"
    scale: int = 4
    crop_sizes: list[list[int]] = field(default_factory=lambda: [[1024, 768], [768, 768], [512, 768]])  # (w, h)
    crop_mode: str = "random"  # random | center: where each crop sits (paper 001: centre crops of a random size)
    prompt_column: str | None = "prompt"
    prompt_drop_rate: float = 0.1
    # optimisation (paper 001 §4.1: AdamW, lr 1e-5, batch 64 over 4 GPUs)
    seed: int = 0
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_train_steps: int = 1000
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    use_8bit_adam: bool = False
    max_grad_norm: float = 1.0
    # Defaults that fit one 80 GB GPU at full size: a bf16 frozen base (fp32 base + T5 alone is 62 GiB) and
    # checkpointed activations. On a CPU, pass `--mixed_precision no --gradient_checkpointing false` for speed.
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    # objective (paper 001 §3.3)
    timestep_eps: float = 0.05
    guidance_scale: float = 3.5
    pixel_loss_weight: float = 1.0  # alpha of Eq. 10; 0 turns the pixel loss off
    pixel_loss_form: str = "printed"  # printed (Eq. 9) | x0
    pixel_loss_crop: int | None = 64  # latent-pixel side of the random crop decoded for the pixel loss
    # optional LoRA "diffusion adapter" on the base attention (paper 004 §3.2)
    use_lora: bool = False
    lora_rank: int = 32
    # checkpoints, validation, logging, publishing
    output_dir: str = "fluxir-adapter"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    validation_steps: int | None = 500
    num_validation_images: int = 2
    validation_inference_steps: int = 20
    validation_metrics: list[str] = field(default_factory=lambda: ["musiq"])
    report_to: str = "tensorboard"  # any accelerate tracker, or "none"
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False

    def check_types(self) -> None:
        """Every field holds a value of its declared type (numbers given as text, e.g. `--max_train_steps abc`,
        are refused here rather than deep in the training loop)."""
        hints = get_type_hints(TrainConfig)
        for f in fields(self):
            value, expected = getattr(self, f.name), hints[f.name]
            if not _matches(value, expected):
                raise ValueError(f"`{f.name}` must be {_describe(expected)}, got {value!r} ({type(value).__name__}).")

    def validate(self) -> None:
        self.check_types()
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"`seed` must be from 0 to 2**63 - 1, got {self.seed}.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(
                f"`checkpoints_total_limit` must be at least 1 (or null for no limit), got "
                f"{self.checkpoints_total_limit}: a limit of 0 would delete every checkpoint."
            )
        for name in ("learning_rate", "max_grad_norm", "ema_decay", "timestep_eps", "guidance_scale"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be a finite, non-negative number, got {getattr(self, name)}.")
        if (self.dataset is None) == (self.hq_folder is None):
            raise ValueError("Give exactly one data source: `dataset` (FluxGen id or folder) or `hq_folder`.")
        if self.hq_folder is not None and not Path(self.hq_folder).is_dir():
            raise ValueError(f"`hq_folder` {self.hq_folder} is not a folder.")
        if not self.crop_sizes or any(len(s) != 2 or s[0] % 16 or s[1] % 16 or min(s) < 16 for s in self.crop_sizes):
            raise ValueError(f"`crop_sizes` must be [width, height] pairs of multiples of 16, got {self.crop_sizes}.")
        if any(s[0] % (16 * self.scale) or s[1] % (16 * self.scale) for s in self.crop_sizes):
            raise ValueError(
                f"Each crop side must be a multiple of {16 * self.scale} so the LQ crop is a whole number of pixels "
                f"at x{self.scale} and packs into 2x2 latent tokens; got {self.crop_sizes}."
            )
        if self.crop_mode not in ("random", "center"):
            raise ValueError(f"`crop_mode` must be 'random' or 'center', got {self.crop_mode!r}.")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"`mixed_precision` must be no, fp16 or bf16, got {self.mixed_precision!r}.")
        if self.pixel_loss_form not in ("printed", "x0"):
            raise ValueError(f"`pixel_loss_form` must be 'printed' or 'x0', got {self.pixel_loss_form!r}.")
        if not 0 <= self.prompt_drop_rate <= 1:
            raise ValueError(f"`prompt_drop_rate` must be in [0, 1], got {self.prompt_drop_rate}.")
        for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "rank", "lora_rank",
                     "checkpointing_steps", "num_validation_images", "validation_inference_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` needs `hub_model_id` (e.g. your-org/fluxir-adapter).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown config key(s) {unknown}. Known keys: {sorted(known)}.")
        return cls(**data)

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
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a) if a[k] != b[k] and k not in RESUMABLE_KEYS]


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
    return {int: "an integer", float: "a number", bool: "true or false", str: "text", type(None): "null"}.get(
        expected, str(expected)
    )


def parse_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply `key=value` overrides; values are parsed as YAML (numbers, booleans, lists, null)."""
    import yaml

    data = config.to_dict()
    hints = get_type_hints(TrainConfig)
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
