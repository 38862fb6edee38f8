"""Typed configuration of a FluxGen build, saved as `fluxgen_config.json` in the output folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fluxir_hub.degradations import PRESETS, MixedConfig

CONFIG_NAME = "fluxgen_config.json"
DEFAULT_METRICS = ("clipiqa+_vitL14_512", "maniqa-pipal", "musiq")  # the names paper 001 used

# Licences of the supported generators; the dataset card states the one that applies.
GENERATOR_LICENSES = {
    "black-forest-labs/FLUX.1-dev": (
        "other",
        "FLUX.1 [dev] Non-Commercial License: images made with FLUX.1-dev may carry its non-commercial terms.",
    ),
    "black-forest-labs/FLUX.1-schnell": ("apache-2.0", "Apache-2.0 (FLUX.1 [schnell])."),
    "tiny": ("apache-2.0", "Apache-2.0: random tiny test model, images carry no third-party licence."),
}


@dataclass
class GenerateConfig:
    """Image generation with a FLUX text-to-image model (paper 001 §3.1, §4.1)."""

    model: str = "black-forest-labs/FLUX.1-dev"  # Hub id or folder; "tiny" for the embedded tiny model
    revision: str | None = None
    prompts_file: str | None = None  # one prompt per line; image i uses line (seed mod n); empty prompt if unset
    guidance_scale: float = 4.0
    num_inference_steps: int = 20
    width: int = 1024
    height: int = 768
    seed_start: int = 0
    seed_end: int = 1000  # exclusive
    batch_size: int = 1
    dtype: str = "bfloat16"

    def validate(self) -> None:
        if self.seed_end <= self.seed_start:
            raise ValueError(
                f"The seed range [{self.seed_start}, {self.seed_end}) is empty or reversed; give --seed-end larger "
                "than --seed-start."
            )
        if self.seed_start < 0:
            raise ValueError(f"Seeds must be non-negative, got --seed-start {self.seed_start}.")
        if self.width % 16 or self.height % 16 or min(self.width, self.height) < 16:
            raise ValueError(f"Width and height must be multiples of 16, got {self.width}x{self.height}.")
        if self.num_inference_steps < 1 or self.batch_size < 1:
            raise ValueError("num_inference_steps and batch_size must be positive.")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be bfloat16, float16 or float32, got {self.dtype!r}.")
        if self.prompts_file is not None and not Path(self.prompts_file).is_file():
            raise ValueError(f"Prompts file {self.prompts_file} does not exist.")


@dataclass
class ScoreConfig:
    """No-reference IQA of every generated image (pyiqa metric names)."""

    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    batch_size: int = 8
    pretrained: bool = True  # False builds learned metrics with random weights (offline tests only)

    def validate(self) -> None:
        import pyiqa

        known = set(pyiqa.list_models())
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ValueError(f"Unknown pyiqa metric(s) {unknown}; see `pyiqa.list_models()`.")
        if not self.metrics:
            raise ValueError("Give at least one metric.")


@dataclass
class SelectConfig:
    """Keep an image only if every metric is at least its `quantile` over the whole pool (top 95 %)."""

    quantile: float = 0.05

    def validate(self) -> None:
        if not 0 <= self.quantile < 1:
            raise ValueError(f"quantile must be in [0, 1), got {self.quantile}.")


@dataclass
class DegradeConfig:
    """Degradation of every kept image: a super-resolution preset (SPEC §3.4), one of the other restoration tasks,
    or `mixed` (paper 002's all-in-one data: each image's task drawn with `task_weights`)."""

    preset: str = "seesr"
    scale: int = 4  # super-resolution factor; the other tasks keep the size
    seed_offset: int = 0  # the LQ of image `seed` uses degradation seed `seed + seed_offset`
    # Store the unsharp-masked HQ as the target (as SeeSR and Real-ESRGAN train); None: the preset's default
    sharpen_target: bool | None = None
    task_weights: dict[str, float] | None = None  # `mixed` only; None: the authors' mix (DEFAULT_WEIGHTS)
    num_workers: int = 1  # CPU processes degrading within each FluxGen process (the LQs are the same for any number)

    @property
    def preset_config(self):
        if self.preset == "mixed" and self.task_weights is not None:
            return MixedConfig(weights=dict(self.task_weights))
        return PRESETS[self.preset]

    @property
    def sharpens_target(self) -> bool:
        """Whether super-resolution pairs store the sharpened target (other tasks never do)."""
        return self.preset_config.sharpen_target if self.sharpen_target is None else self.sharpen_target

    def validate(self) -> None:
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ValueError(f"`--num-workers` must be a positive integer, got {self.num_workers!r}.")
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown degradation preset {self.preset!r}; choose one of {', '.join(PRESETS)}.")
        if self.task_weights is not None and self.preset != "mixed":
            raise ValueError(f"Task weights apply to the `mixed` preset only, not {self.preset!r}.")
        self.preset_config  # noqa: B018 (validates the weights)
        if self.sharpen_target and not PRESETS[self.preset].usm_sharpen:
            raise ValueError(
                f"Preset {self.preset!r} does not sharpen; `sharpen_target` needs seesr, realesrgan or mixed."
            )
        if self.scale < 1:
            raise ValueError(f"scale must be a positive integer, got {self.scale}.")


@dataclass
class ExportConfig:
    """Parquet export: shard size and the validation split."""

    validation_fraction: float = 0.01
    max_shard_bytes: int = 500_000_000  # image bytes per parquet shard, as `datasets` shards (500 MB)
    rows_per_shard: int = 10_000  # and at most this many rows

    def validate(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}.")
        if self.rows_per_shard < 1 or self.max_shard_bytes < 1:
            raise ValueError("rows_per_shard and max_shard_bytes must be positive.")


@dataclass
class FluxGenConfig:
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    format_version: int = 1

    def validate(self) -> None:
        for section in (self.generate, self.score, self.select, self.degrade, self.export):
            section.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FluxGenConfig:
        sections = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for name, value in data.items():
            if name not in sections:
                raise ValueError(f"Unknown config section {name!r}.")
            if isinstance(value, dict):
                section_cls = {
                    "generate": GenerateConfig,
                    "score": ScoreConfig,
                    "select": SelectConfig,
                    "degrade": DegradeConfig,
                    "export": ExportConfig,
                }[name]
                allowed = {f.name for f in fields(section_cls)}
                unknown = set(value) - allowed
                if unknown:
                    raise ValueError(f"Unknown key(s) {sorted(unknown)} in config section {name!r}.")
                kwargs[name] = section_cls(**value)
            else:
                kwargs[name] = value
        return cls(**kwargs)

    def save(self, folder: Path) -> None:
        from .io_utils import atomic_write_text

        atomic_write_text(Path(folder) / CONFIG_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> FluxGenConfig | None:
        path = Path(folder) / CONFIG_NAME
        return cls.from_dict(json.loads(path.read_text())) if path.exists() else None


# Settings that may change between runs into the same folder without changing what is already there.
RESUMABLE_KEYS = {
    "generate.seed_end", "generate.batch_size", "score.batch_size", "export.rows_per_shard", "export.max_shard_bytes",
    "degrade.num_workers",
}  # fmt: skip


def config_differences(old: FluxGenConfig, new: FluxGenConfig) -> list[str]:
    """Human-readable list of settings that differ (ignoring `RESUMABLE_KEYS`)."""

    def flat(config: FluxGenConfig) -> dict[str, Any]:
        out = {}
        for section, values in config.to_dict().items():
            if isinstance(values, dict):
                out.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                out[section] = values
        return out

    a, b = flat(old), flat(new)
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and k not in RESUMABLE_KEYS
    ]
