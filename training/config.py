"""Typed training configuration: a YAML/JSON file plus `--key value` overrides, saved with every checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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

    def validate(self) -> None:
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


def parse_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply `key=value` overrides; values are parsed as YAML (numbers, booleans, lists, null)."""
    import yaml

    data = config.to_dict()
    for item in items:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like key=value.")
        key, value = item.split("=", 1)
        data[key.strip().lstrip("-").replace("-", "_")] = yaml.safe_load(value)
    return TrainConfig.from_dict(data)
