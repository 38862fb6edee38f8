"""Model card and Hub upload of a trained adapter."""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
UPLOAD_IGNORE = ["checkpoint-*", "checkpoint-*/**", "logs/**", "validation/**", ".*"]


def write_model_card(folder: Path, config: TrainConfig, steps: int) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    licence = "other" if "FLUX.1-dev" in config.pretrained_model else "apache-2.0"
    card_data = ModelCardData(
        library_name="diffusers",
        base_model=config.pretrained_model if config.pretrained_model != "tiny" else None,
        license=licence,
        tags=["diffusers", "flux", "image-restoration", "fluxir", "super-resolution"],
        datasets=[config.dataset]
        if config.dataset and "/" in config.dataset and not Path(config.dataset).exists()
        else None,
        pipeline_tag="image-to-image",
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        repo_id=config.hub_model_id or "path/to/this/folder",
        base_model=config.pretrained_model,
        data=config.dataset
        or f"HQ images in `{Path(config.hq_folder).name}`, degraded on the fly "
        f"(`{config.degradation_preset}`, x{config.scale})",
        steps=steps,
        config=config,
        effective_batch=config.train_batch_size * config.gradient_accumulation_steps,
        use_lora=config.use_lora,
    )
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def push_adapter(folder: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload the adapter weights, LoRA, config and card (not checkpoints or logs) to a model repo."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), repo_type="model", ignore_patterns=UPLOAD_IGNORE,
        commit_message="Upload FluxIR adapter",
    )  # fmt: skip
    return str(url)
