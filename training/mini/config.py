"""Typed settings of a mini-model build, saved as `mini_build_config.json` beside what the build produces."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_NAME = "mini_build_config.json"


@dataclass
class VAEStage:
    """The autoencoder: FLUX's layout (16 latent channels, 8x down, scale and shift), trained for fidelity until its
    PSNR on validation crops of training photos (held out of this stage only) stops rising."""

    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    layers_per_block: int = 1
    loss: str = "mse"  # "mse" or "l1"; MSE measured 1.1 dB better on the validation crops (README)
    batch_size: int = 16
    patch_size: int = 64
    learning_rate: float = 7e-4  # 1e-3 held constant stalled at 23.4 dB where a decaying 1e-3 passed 25 (README)
    warmup_steps: int = 100
    max_steps: int = 6000  # a cap (the build's time budget): the run stops earlier when the validation curve flattens
    eval_every: int = 250
    plateau_window: int = 500  # flat: the best PSNR of the last window beats the best before it by < plateau_gain
    plateau_gain: float = 0.1
    plateau_decays: int = 4  # the rate halves at each flat stretch; flat once more after this many halvings: stop
    latent_penalty: float = 1e-4  # keeps the deterministic latents near the origin (no posterior sampling)
    validation_photos: list[str] = field(default_factory=lambda: ["Dragonfly", "Wine", "BytheWater", "grace_hopper"])
    validation_crops: int = 3  # 256 px crops per validation photo
    bf16_autocast: bool = True  # 1.5x faster steps on this CPU (AVX512-BF16); weights and loss stay float32
    storage_dtype: str = "float16"  # the shipped weights' dtype (half the size); loaded as float32


@dataclass
class BaseStage:
    """The base generator: an empty-prompt flow-matching FLUX transformer (paper 001 Eq. 7-8, FLUX's time shift)."""

    num_layers: int = 2
    num_single_layers: int = 4
    attention_head_dim: int = 32
    num_attention_heads: int = 4
    steps: int = 2600  # v2: 3000 on 40 photos
    batch_size: int = 16
    patch_sizes: list[int] = field(default_factory=lambda: [128, 256])  # pixels; one size per batch
    learning_rate: float = 5e-4
    latent_bank_size: int = 2048  # random crops encoded once by the trained VAE
    bf16_autocast: bool = True


@dataclass
class FluxGenStage:
    """FluxGen on the mini base (paper 001 §3.1), with metrics that need no downloaded weights."""

    num_images: int = 2280  # the IQA filter drops at most 10 %: at least 2048 pairs (2052 kept in v3)
    width: int = 256
    height: int = 192
    num_inference_steps: int = 12  # v2: 20; the build's time budget
    guidance_scale: float = 4.0
    metrics: list[str] = field(default_factory=lambda: ["piqe", "entropy"])
    quantile: float = 0.05
    preset: str = "seesr"
    scale: int = 4


@dataclass
class AdapterStage:
    """`fluxir-train` on the FluxGen pairs: rank 32, pixel loss on."""

    rank: int = 32
    steps: int = 2200  # v2: 3000
    batch_size: int = 8
    crop_size: int = 128
    learning_rate: float = 5e-4
    pixel_loss_weight: float = 1.0
    pixel_loss_crop: int | None = 8


@dataclass
class TasksStage:
    """The all-in-one adapter (paper 002's seven tasks): the SR adapter fine-tuned on the FluxGen images degraded
    on the fly with `mixed`, with task prompts."""

    steps: int = 1200  # v2: 1500
    batch_size: int = 8
    crop_size: int = 128
    learning_rate: float = 2e-4
    # What the all-in-one adapter restores with when a call leaves them unset (each task's own restoration weight and
    # colour fix still apply): 2 steps, chosen per task on validation crops of training photos by
    # `benchmarks/mini_task_defaults.py` (README), never on held-out ones.
    sampling_defaults: dict = field(default_factory=lambda: {"num_inference_steps": 2})


@dataclass
class EvalStage:
    """Held-out benchmark: seeded crops of the held-out photos, degraded like the training data."""

    count: int = 14
    crop: int = 256
    preset: str = "seesr"
    scale: int = 4
    num_inference_steps: int = 20
    # What the shipped adapter restores with when a call leaves them unset (`FluxIRAdapter.sampling_defaults`):
    # chosen on validation crops of training photos by `benchmarks/mini_defaults.py` (README), never on held-out ones.
    sampling_defaults: dict = field(
        default_factory=lambda: {"num_inference_steps": 2, "restoration_weight": 0.2, "color_fix": "wavelet"}
    )


@dataclass
class MiniBuildConfig:
    seed: int = 0
    # Which training photos (`training.mini.photos`): 3 (the shipped v3 build) adds 60 GCompris animal and monument
    # photos (fur, feathers, foliage, stone: the texture the wallpapers lack) to set 2, the 40 of v2
    # (`configs/mini_v2.json` rebuilds v2).
    photo_set: int = 3
    vae: VAEStage = field(default_factory=VAEStage)
    base: BaseStage = field(default_factory=BaseStage)
    fluxgen: FluxGenStage = field(default_factory=FluxGenStage)
    adapter: AdapterStage = field(default_factory=AdapterStage)
    tasks: TasksStage = field(default_factory=TasksStage)
    eval: EvalStage = field(default_factory=EvalStage)
    format_version: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def trained_settings(self) -> dict[str, Any]:
        """The settings the trained stages depend on: all but the eval stage and the shipped sampling defaults, which
        only `ship` and `eval` read (choosing new defaults on validation reuses the trained stages)."""
        settings = self.to_dict()
        del settings["eval"]
        settings["tasks"].pop("sampling_defaults")
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiniBuildConfig:
        sections = {f.name: f.default_factory for f in fields(cls) if f.default_factory is not MISSING}
        kwargs = {}
        for key, value in data.items():
            if key in sections:
                section = sections[key]()
                known = {f.name for f in fields(section)}
                unknown = set(value) - known
                if unknown:
                    raise ValueError(f"Unknown key(s) {sorted(unknown)} in section {key!r} of the mini build config.")
                kwargs[key] = type(section)(**value)
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise ValueError(f"Unknown mini build setting {key!r}.")
        return cls(**kwargs)

    def save(self, folder: str | Path) -> None:
        from fluxir_hub.files import atomic_write_text

        atomic_write_text(Path(folder) / CONFIG_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> MiniBuildConfig | None:
        path = Path(folder) / CONFIG_NAME
        return cls.from_dict(json.loads(path.read_text())) if path.exists() else None

    def scaled(self, factor: float) -> MiniBuildConfig:
        """The same build with every training stage's step count (and FluxGen's image count) times `factor`: for
        smoke tests (`factor` << 1) and longer runs on a GPU."""
        data = self.to_dict()
        for section in ("base", "adapter", "tasks"):
            data[section]["steps"] = max(1, round(data[section]["steps"] * factor))
        vae = data["vae"]
        for key in ("max_steps", "eval_every", "plateau_window", "warmup_steps"):
            vae[key] = max(1, round(vae[key] * factor))
        data["fluxgen"]["num_images"] = max(32, round(data["fluxgen"]["num_images"] * factor))
        data["base"]["latent_bank_size"] = max(32, round(data["base"]["latent_bank_size"] * factor))
        return MiniBuildConfig.from_dict(data)
